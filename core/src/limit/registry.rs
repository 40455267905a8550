//! Limits shared by name: [`Registry`], [`default_registry`] and [`FixedRegistry`].
//!
//! A [`Registry`] holds two kinds of named limits, each kind in its own namespace:
//! concurrency limits ([`Semaphore`]s, by size) and rate limits
//! ([`RateLimiter`](crate::rate::RateLimiter)s, by quota and clock). Both follow one rule:
//! the first request for a name creates it, the same request again shares it, and a
//! request with another configuration is a typed error naming both, never a silent share.

use alloc::borrow::Cow;

use super::{LimitError, Semaphore, check_size};
use crate::sync::SpinMutex;

#[cfg(target_has_atomic = "ptr")]
pub use with_alloc::Registry;
#[cfg(all(target_has_atomic = "ptr", not(loom)))]
pub use with_alloc::default_registry;

#[cfg(target_has_atomic = "ptr")]
mod with_alloc {
    use alloc::collections::BTreeMap;
    use alloc::sync::Arc;
    use core::any::{Any, TypeId};
    use core::fmt;

    use super::*;
    use crate::rate::{Quota, QuotaError, RateLimiter};
    use crate::time::Clock;

    /// One map from names to shared values of one kind, each with the configuration it was
    /// created with. Finding, sharing and refusing a name work the same for every kind.
    struct Named<C, V: ?Sized> {
        entries: BTreeMap<Cow<'static, str>, (C, Arc<V>)>,
    }

    impl<C: PartialEq + Copy, V: ?Sized> Named<C, V> {
        const fn new() -> Self {
            Named { entries: BTreeMap::new() }
        }

        /// The value named `name`, or `fresh` registered under it if the name is new; if
        /// it exists with another configuration, the name and that configuration.
        fn get_or_insert(
            &mut self,
            name: Cow<'static, str>,
            config: C,
            fresh: &Arc<V>,
        ) -> Result<Arc<V>, (Cow<'static, str>, C)> {
            match self.entries.get(&*name) {
                Some((existing, value)) if *existing == config => Ok(value.clone()),
                Some((existing, _)) => Err((name, *existing)),
                None => {
                    self.entries.insert(name, (config, fresh.clone()));
                    Ok(fresh.clone())
                }
            }
        }

        fn get(&self, name: &str) -> Option<Arc<V>> {
            self.entries.get(name).map(|(_, value)| value.clone())
        }
    }

    /// A rate limiter's configuration: its quota, and the type of its clock.
    #[derive(Clone, Copy)]
    struct RateConfig {
        quota: Quota,
        clock: TypeId,
        clock_name: &'static str,
    }

    impl PartialEq for RateConfig {
        fn eq(&self, other: &Self) -> bool {
            self.quota == other.quota && self.clock == other.clock
        }
    }

    /// A thread-safe map from names to shared [`Semaphore`]s: kompoz's
    /// `limited(rule, max_concurrent=10, name="api_pool")`, as a value you own.
    ///
    /// Asking for a name the first time creates its semaphore; asking again with the same
    /// size returns the same semaphore; asking with a different size is a
    /// [`LimitError::SizeMismatch`], never a silent share.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kompoz::limit::{LimitError, Registry};
    ///
    /// let registry = Registry::new();
    /// let a = registry.get_or_create("api_pool", 10)?;
    /// let b = registry.get_or_create("api_pool", 10)?;
    /// assert!(Arc::ptr_eq(&a, &b));
    /// assert_eq!(
    ///     registry.get_or_create("api_pool", 5).unwrap_err(),
    ///     LimitError::SizeMismatch { name: "api_pool".into(), existing: 10, requested: 5 },
    /// );
    /// # Ok::<(), LimitError>(())
    /// ```
    pub struct Registry {
        limits: SpinMutex<Named<usize, Semaphore>>,
        rates: SpinMutex<Named<RateConfig, dyn Any + Send + Sync>>,
    }

    impl Registry {
        /// An empty registry.
        #[cfg(not(loom))]
        pub const fn new() -> Registry {
            Registry { limits: SpinMutex::new(Named::new()), rates: SpinMutex::new(Named::new()) }
        }

        /// An empty registry.
        #[cfg(loom)]
        pub fn new() -> Registry {
            Registry { limits: SpinMutex::new(Named::new()), rates: SpinMutex::new(Named::new()) }
        }

        /// The semaphore named `name`, created with `max_concurrent` permits if it does not
        /// exist yet. Fails if `max_concurrent` is zero or too large, or if `name` exists
        /// with another size.
        pub fn get_or_create(
            &self,
            name: impl Into<Cow<'static, str>>,
            max_concurrent: usize,
        ) -> Result<Arc<Semaphore>, LimitError> {
            check_size(max_concurrent)?;
            let name = name.into();
            // Named after its key, so that its events and `Debug` say which limit it is.
            let fresh = Arc::new(Semaphore::new(max_concurrent)?.with_name(name.clone()));
            self.limits.with(|limits| limits.get_or_insert(name, max_concurrent, &fresh)).map_err(
                |(name, existing)| LimitError::SizeMismatch {
                    name,
                    existing,
                    requested: max_concurrent,
                },
            )
        }

        /// The semaphore named `name`, if it exists.
        pub fn get(&self, name: &str) -> Option<Arc<Semaphore>> {
            self.limits.with(|limits| limits.get(name))
        }

        /// The rate limiter named `name`, created with `quota` on `clock` if it does not
        /// exist yet. Fails if `name` exists with another quota
        /// ([`QuotaError::QuotaMismatch`], naming both) or on another type of clock
        /// ([`QuotaError::ClockMismatch`]). Rate limiters and semaphores have separate
        /// names.
        ///
        /// ```
        /// use std::sync::Arc;
        /// use kompoz::limit::Registry;
        /// use kompoz::rate::{Quota, QuotaError};
        /// use kompoz::ManualClock;
        ///
        /// let registry = Registry::new();
        /// let clock = ManualClock::new();
        /// let a = registry.rate_limiter("github_api", Quota::per_hour(5_000)?, clock.clone())?;
        /// let b = registry.rate_limiter("github_api", Quota::per_hour(5_000)?, clock.clone())?;
        /// assert!(Arc::ptr_eq(&a, &b));
        /// let other = Quota::per_hour(60)?;
        /// assert_eq!(
        ///     registry.rate_limiter("github_api", other, clock).unwrap_err(),
        ///     QuotaError::QuotaMismatch {
        ///         name: "github_api".into(),
        ///         existing: Quota::per_hour(5_000)?,
        ///         requested: other,
        ///     },
        /// );
        /// # Ok::<(), QuotaError>(())
        /// ```
        pub fn rate_limiter<C: Clock + Send + Sync + 'static>(
            &self,
            name: impl Into<Cow<'static, str>>,
            quota: Quota,
            clock: C,
        ) -> Result<Arc<RateLimiter<C>>, QuotaError> {
            let config = RateConfig {
                quota,
                clock: TypeId::of::<C>(),
                clock_name: core::any::type_name::<C>(),
            };
            // Made before the lock, so that an unneeded one (and its clock) is dropped
            // after it: registering is rare, and a clock's drop is user code.
            let name = name.into();
            let fresh: Arc<dyn Any + Send + Sync> =
                Arc::new(RateLimiter::new(quota, clock).with_name(name.clone()));
            let found = self.rates.with(|rates| rates.get_or_insert(name, config, &fresh));
            drop(fresh);
            match found {
                Ok(limiter) => {
                    limiter.downcast::<RateLimiter<C>>().map_err(|_| QuotaError::ClockMismatch {
                        name: Cow::Borrowed("?"),
                        existing: "another clock type",
                        requested: config.clock_name,
                    })
                }
                Err((name, existing)) if existing.quota != quota => {
                    Err(QuotaError::QuotaMismatch {
                        name,
                        existing: existing.quota,
                        requested: quota,
                    })
                }
                Err((name, existing)) => Err(QuotaError::ClockMismatch {
                    name,
                    existing: existing.clock_name,
                    requested: config.clock_name,
                }),
            }
        }

        /// The rate limiter named `name` on clocks of type `C`, if it exists.
        pub fn get_rate_limiter<C: Clock + Send + Sync + 'static>(
            &self,
            name: &str,
        ) -> Option<Arc<RateLimiter<C>>> {
            self.rates.with(|rates| rates.get(name))?.downcast().ok()
        }

        /// How many concurrency limits are registered (rate limits are counted by
        /// [`rate_limits`](Registry::rate_limits)).
        pub fn len(&self) -> usize {
            self.limits.with(|limits| limits.entries.len())
        }

        /// How many rate limits are registered.
        pub fn rate_limits(&self) -> usize {
            self.rates.with(|rates| rates.entries.len())
        }

        /// Whether no name is registered.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    impl Default for Registry {
        fn default() -> Self {
            Registry::new()
        }
    }

    impl fmt::Debug for Registry {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            // Copied out under the locks, written after: a `Formatter` writes to the
            // caller's `fmt::Write`, user code that never runs inside a critical section.
            let limits: alloc::vec::Vec<(Cow<'static, str>, usize)> = self.limits.with(|limits| {
                limits.entries.iter().map(|(name, (size, _))| (name.clone(), *size)).collect()
            });
            let rates: alloc::vec::Vec<(Cow<'static, str>, Quota)> = self.rates.with(|rates| {
                rates
                    .entries
                    .iter()
                    .map(|(name, (config, _))| (name.clone(), config.quota))
                    .collect()
            });
            f.debug_map()
                .entries(limits.iter().map(|(name, size)| (name, size)))
                .entries(rates.iter().map(|(name, quota)| (name, quota)))
                .finish()
        }
    }

    /// The process-wide registry behind [`limited_named`](crate::limited_named): every
    /// combinator that names a limit without passing a registry shares this one.
    #[cfg(not(loom))]
    pub fn default_registry() -> &'static Registry {
        static DEFAULT: Registry = Registry::new();
        &DEFAULT
    }
}

/// A registry of at most `N` named limits that needs no allocator: the semaphores live
/// inside it, so it can be a `static` on a board without a heap.
///
/// Names are `&'static str`. The same name with the same size gives the same semaphore;
/// a different size is [`LimitError::SizeMismatch`]; a name beyond `N` is
/// [`LimitError::RegistryFull`].
///
/// ```
/// use kompoz::limit::{FixedRegistry, LimitError};
///
/// static LIMITS: FixedRegistry<2> = FixedRegistry::new();
///
/// let spi = LIMITS.get_or_create("spi", 1)?;
/// assert!(core::ptr::eq(spi, LIMITS.get_or_create("spi", 1)?));
/// LIMITS.get_or_create("uart", 2)?;
/// assert_eq!(
///     LIMITS.get_or_create("i2c", 1).unwrap_err(),
///     LimitError::RegistryFull { name: "i2c".into(), capacity: 2 },
/// );
/// # Ok::<(), LimitError>(())
/// ```
#[cfg(not(loom))]
pub struct FixedRegistry<const N: usize> {
    /// Registered names and sizes; entry `i` owns `semaphores[i]`.
    names: SpinMutex<heapless::Vec<(&'static str, usize), N>>,
    semaphores: [Semaphore; N],
}

#[cfg(not(loom))]
impl<const N: usize> FixedRegistry<N> {
    /// An empty registry with room for `N` limits.
    pub const fn new() -> Self {
        FixedRegistry {
            names: SpinMutex::new(heapless::Vec::new()),
            semaphores: [const { Semaphore::empty() }; N],
        }
    }

    /// The semaphore named `name`, given `max_concurrent` permits if it is new.
    pub fn get_or_create(
        &self,
        name: &'static str,
        max_concurrent: usize,
    ) -> Result<&Semaphore, LimitError> {
        check_size(max_concurrent)?;
        self.names.with(|names| {
            if let Some(index) = names.iter().position(|(known, _)| *known == name) {
                let existing = names[index].1;
                return if existing == max_concurrent {
                    Ok(&self.semaphores[index])
                } else {
                    Err(LimitError::SizeMismatch {
                        name: Cow::Borrowed(name),
                        existing,
                        requested: max_concurrent,
                    })
                };
            }
            let index = names.len();
            names
                .push((name, max_concurrent))
                .map_err(|_| LimitError::RegistryFull { name: Cow::Borrowed(name), capacity: N })?;
            let semaphore = &self.semaphores[index];
            semaphore.add_permits(max_concurrent)?;
            Ok(semaphore)
        })
    }

    /// The semaphore named `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<&Semaphore> {
        self.names
            .with(|names| names.iter().position(|(known, _)| *known == name))
            .map(|index| &self.semaphores[index])
    }
}

#[cfg(not(loom))]
impl<const N: usize> Default for FixedRegistry<N> {
    fn default() -> Self {
        FixedRegistry::new()
    }
}

#[cfg(not(loom))]
impl<const N: usize> core::fmt::Debug for FixedRegistry<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.names.with(|names| f.debug_map().entries(names.iter().map(|(n, s)| (n, s))).finish())
    }
}
