//! Wake-ups by pub/sub: one subscriber connection per fleet, shared by every primitive.
//!
//! Primitives register a handler per channel. The subscriber task (re)connects with
//! backoff, (re)subscribes to every registered channel, and after each (re)connection
//! calls every handler with `None`: messages may have been missed while it was away, so
//! whoever waits on one should look again. Pub/sub is only ever a hint: every waiter
//! also polls, so a lost message costs latency, never correctness.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::link::Backoff;

/// Called with a message's payload, or `None` after a (re)connection.
pub(crate) type Handler = Arc<dyn Fn(Option<&str>) + Send + Sync>;

#[derive(Default)]
struct Handlers {
    by_channel: HashMap<String, Vec<Handler>>,
}

/// The registry of channels and handlers, shared with the subscriber task.
pub(crate) struct Notifier {
    handlers: Mutex<Handlers>,
    subscribe: mpsc::UnboundedSender<String>,
}

impl Notifier {
    /// A notifier and the receiving end its subscriber task reads new channels from.
    pub(crate) fn new() -> (Arc<Notifier>, mpsc::UnboundedReceiver<String>) {
        let (subscribe, requests) = mpsc::unbounded_channel();
        (Arc::new(Notifier { handlers: Mutex::default(), subscribe }), requests)
    }

    /// Calls `handler` with every message published on `channel`.
    pub(crate) fn register(&self, channel: String, handler: Handler) {
        let new = {
            let mut handlers = self.handlers.lock().unwrap_or_else(PoisonError::into_inner);
            let list = handlers.by_channel.entry(channel.clone()).or_default();
            list.push(handler);
            list.len() == 1
        };
        if new {
            // The task is gone only when the fleet is: then nobody listens anyway.
            let _ = self.subscribe.send(channel);
        }
    }

    fn channels(&self) -> Vec<String> {
        let handlers = self.handlers.lock().unwrap_or_else(PoisonError::into_inner);
        handlers.by_channel.keys().cloned().collect()
    }

    /// Runs the handlers of `channel` (or of every channel), outside the lock.
    fn dispatch(&self, channel: Option<&str>, payload: Option<&str>) {
        let chosen: Vec<Handler> = {
            let handlers = self.handlers.lock().unwrap_or_else(PoisonError::into_inner);
            match channel {
                Some(channel) => handlers.by_channel.get(channel).cloned().unwrap_or_default(),
                None => handlers.by_channel.values().flatten().cloned().collect(),
            }
        };
        for handler in chosen {
            handler(payload);
        }
    }

    /// The subscriber task: runs for the fleet's lifetime (aborted when it is dropped).
    pub(crate) async fn listen(
        self: Arc<Notifier>,
        client: redis::Client,
        mut requests: mpsc::UnboundedReceiver<String>,
        call_timeout: Duration,
        backoff: Backoff,
    ) {
        let mut delay = backoff.first();
        loop {
            let connected = tokio::time::timeout(call_timeout, client.get_async_pubsub()).await;
            let Ok(Ok(pubsub)) = connected else {
                tokio::time::sleep(Backoff::jittered(delay)).await;
                delay = backoff.next(delay);
                continue;
            };
            let (mut sink, mut stream) = pubsub.split();
            let channels = self.channels();
            if !channels.is_empty() {
                let subscribed = tokio::time::timeout(call_timeout, sink.subscribe(channels)).await;
                if !matches!(subscribed, Ok(Ok(()))) {
                    tokio::time::sleep(Backoff::jittered(delay)).await;
                    delay = backoff.next(delay);
                    continue;
                }
            }
            delay = backoff.first();
            self.dispatch(None, None);
            loop {
                tokio::select! {
                    message = stream.next() => match message {
                        Some(message) => {
                            let payload = message.get_payload::<String>().ok();
                            self.dispatch(Some(message.get_channel_name()), payload.as_deref());
                        }
                        // The connection is gone: reconnect.
                        None => break,
                    },
                    request = requests.recv() => match request {
                        Some(channel) => {
                            let subscribed =
                                tokio::time::timeout(call_timeout, sink.subscribe(channel)).await;
                            if !matches!(subscribed, Ok(Ok(()))) {
                                break;
                            }
                        }
                        None => return,
                    },
                }
            }
        }
    }
}
