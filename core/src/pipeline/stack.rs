//! The typed stack under a [`Pipeline`](super::Pipeline): layers in a cons list of
//! tuples, `(outermost, (next, (..., ())))`, run by recursion that the compiler inlines.
//! No boxing, no dynamic dispatch, no allocation.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::error::Error;

/// The call a pipeline guards, as its layers see it: the factory that makes the guarded
/// future, and the pipeline's timer. A call's future holds one; every layer's future
/// holds a reference to it (one pointer, however many layers are stacked), and passes it
/// on with [`Layers::run`]. [`Layer`]'s example is a layer that does.
pub struct GuardedCall<'a, S, F> {
    timer: &'a S,
    make: F,
}

impl<'a, S, F> GuardedCall<'a, S, F> {
    #[inline(always)]
    pub(crate) fn new(timer: &'a S, make: F) -> Self {
        GuardedCall { timer, make }
    }

    /// The pipeline's timer: what timeouts, backoffs and hedges wait on.
    #[inline(always)]
    pub fn timer(&self) -> &'a S {
        self.timer
    }
}

impl<S, F> fmt::Debug for GuardedCall<'_, S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedCall").finish_non_exhaustive()
    }
}

/// One primitive of a pipeline, wrapped around the rest of the stack.
///
/// Implement it to add your own primitive (a cache, a metrics probe) with
/// [`Pipeline::layer`](super::Pipeline::layer). `wrap` runs the rest of the stack with
/// `rest.run(call)`, as many times as it likes (a retry runs it again, a hedge runs
/// several at once), and maps what it sees into the one flat [`Error`]. A layer's future
/// is made when the layer outside it starts it (for the outermost, on the call's first
/// poll).
///
/// ```
/// use core::future::Future;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use kompoz::Error;
/// use kompoz::pipeline::{GuardedCall, Layer, Layers, Pipeline};
///
/// /// Counts the calls that reach it.
/// struct Count(AtomicU32);
///
/// impl<T, E, S> Layer<T, E, S> for Count {
///     fn wrap<'a, R, F, Fut>(
///         &'a self,
///         rest: &'a R,
///         call: &'a GuardedCall<'a, S, F>,
///     ) -> impl Future<Output = Result<T, Error<E>>>
///     where
///         R: Layers<T, E, S>,
///         F: Fn() -> Fut,
///         Fut: Future<Output = Result<T, E>>,
///     {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         rest.run(call)
///     }
/// }
///
/// let pipeline = Pipeline::<u32, ()>::new().layer(Count(AtomicU32::new(0)));
/// assert_eq!(futures::executor::block_on(pipeline.call(|| async { Ok(7) })), Ok(7));
/// ```
pub trait Layer<T, E, S> {
    /// Runs one call through this layer and the `rest` of the stack below it.
    fn wrap<'a, R, F, Fut>(
        &'a self,
        rest: &'a R,
        call: &'a GuardedCall<'a, S, F>,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        R: Layers<T, E, S>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>;
}

/// A stack of layers: `()` (the guarded call itself) or `(layer, rest)`.
pub trait Layers<T, E, S> {
    /// Runs one call through the whole stack.
    fn run<'a, F, Fut>(
        &'a self,
        call: &'a GuardedCall<'a, S, F>,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>;
}

impl<T, E, S> Layers<T, E, S> for () {
    #[inline]
    fn run<'a, F, Fut>(
        &'a self,
        call: &'a GuardedCall<'a, S, F>,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        Innermost { call: (call.make)() }
    }
}

impl<T, E, S, A, R> Layers<T, E, S> for (A, R)
where
    A: Layer<T, E, S>,
    R: Layers<T, E, S>,
{
    #[inline]
    fn run<'a, F, Fut>(
        &'a self,
        call: &'a GuardedCall<'a, S, F>,
    ) -> impl Future<Output = Result<T, Error<E>>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.0.wrap(&self.1, call)
    }
}

/// Appends a layer at the innermost end of a stack: the builder adds layers outermost
/// first, in the order they are written.
pub trait Push<N> {
    /// The stack with `N` innermost.
    type Output;
    /// Appends `layer`.
    fn push(self, layer: N) -> Self::Output;
}

impl<N> Push<N> for () {
    type Output = (N, ());
    fn push(self, layer: N) -> (N, ()) {
        (layer, ())
    }
}

impl<N, A, R: Push<N>> Push<N> for (A, R) {
    type Output = (A, R::Output);
    fn push(self, layer: N) -> Self::Output {
        (self.0, self.1.push(layer))
    }
}

/// The innermost layer of a non-empty stack, which the builder's modifiers (`classify`,
/// `on_retry`, `max_wait`, ...) configure.
pub trait Last {
    /// The innermost layer.
    type Layer;
    /// The stack with its innermost layer replaced by `N`.
    type Replace<N>;
    /// Replaces the innermost layer with `f(layer)`.
    fn map_last<N>(self, f: impl FnOnce(Self::Layer) -> N) -> Self::Replace<N>;
}

impl<A> Last for (A, ()) {
    type Layer = A;
    type Replace<N> = (N, ());
    fn map_last<N>(self, f: impl FnOnce(A) -> N) -> (N, ()) {
        (f(self.0), ())
    }
}

impl<A, B, R> Last for (A, (B, R))
where
    (B, R): Last,
{
    type Layer = <(B, R) as Last>::Layer;
    type Replace<N> = (A, <(B, R) as Last>::Replace<N>);
    fn map_last<N>(self, f: impl FnOnce(Self::Layer) -> N) -> Self::Replace<N> {
        (self.0, self.1.map_last(f))
    }
}

/// The guarded call itself, its error wrapped in [`Error::Inner`]. Polled only until it
/// completes: every layer stops polling what it runs once that completes.
#[must_use = "futures do nothing unless polled"]
struct Innermost<Fut> {
    /// Structurally pinned.
    call: Fut,
}

impl<T, E, Fut: Future<Output = Result<T, E>>> Future for Innermost<Fut> {
    type Output = Result<T, Error<E>>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `call` is structurally pinned, never moved out; `Innermost` has no `Drop`
        // impl and is `Unpin` only when the call is (the auto trait).
        let call = unsafe { self.map_unchecked_mut(|this| &mut this.call) };
        call.poll(cx).map(|result| result.map_err(Error::Inner))
    }
}

/// A future whose output is mapped by a function: the layers' adapter that adds no state
/// machine of its own, so the future inside is not copied into one (a nest of `async`
/// blocks copies each level's future into the next).
#[must_use = "futures do nothing unless polled"]
pub(crate) struct Map<Fut, G> {
    /// Structurally pinned.
    future: Fut,
    /// Taken when the future completes.
    map: Option<G>,
}

impl<Fut, G> Map<Fut, G> {
    #[inline]
    pub(crate) fn new(future: Fut, map: G) -> Self {
        Map { future, map: Some(map) }
    }
}

impl<Fut: Future, G: FnOnce(Fut::Output) -> O, O> Future for Map<Fut, G> {
    type Output = O;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        // SAFETY: `future` is structurally pinned and nothing else is: it is never moved
        // out of `self`, `Map` has no `Drop` impl, and it is `Unpin` only when `Fut` is
        // (the auto trait). `map` is an ordinary field, taken by value.
        let (future, map) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.future), &mut this.map)
        };
        let output = core::task::ready!(future.poll(cx));
        match map.take() {
            Some(map) => Poll::Ready(map(output)),
            // Polled after it completed: it has nothing more to give.
            None => Poll::Pending,
        }
    }
}

impl<Fut, G> fmt::Debug for Map<Fut, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map").field("done", &self.map.is_none()).finish_non_exhaustive()
    }
}
