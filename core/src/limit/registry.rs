//! Limits shared by name: [`Registry`], [`default_registry`] and [`FixedRegistry`].

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
    use core::fmt;

    use super::*;

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
        limits: SpinMutex<BTreeMap<Cow<'static, str>, Entry>>,
    }

    struct Entry {
        size: usize,
        semaphore: Arc<Semaphore>,
    }

    impl Registry {
        /// An empty registry.
        #[cfg(not(loom))]
        pub const fn new() -> Registry {
            Registry { limits: SpinMutex::new(BTreeMap::new()) }
        }

        /// An empty registry.
        #[cfg(loom)]
        pub fn new() -> Registry {
            Registry { limits: SpinMutex::new(BTreeMap::new()) }
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
            self.limits.with(|limits| match limits.get(&*name) {
                Some(entry) if entry.size == max_concurrent => Ok(entry.semaphore.clone()),
                Some(entry) => Err(LimitError::SizeMismatch {
                    name,
                    existing: entry.size,
                    requested: max_concurrent,
                }),
                None => {
                    let semaphore = Arc::new(Semaphore::new(max_concurrent)?);
                    limits
                        .insert(name, Entry { size: max_concurrent, semaphore: semaphore.clone() });
                    Ok(semaphore)
                }
            })
        }

        /// The semaphore named `name`, if it exists.
        pub fn get(&self, name: &str) -> Option<Arc<Semaphore>> {
            self.limits.with(|limits| limits.get(name).map(|entry| entry.semaphore.clone()))
        }

        /// How many names are registered.
        pub fn len(&self) -> usize {
            self.limits.with(|limits| limits.len())
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
            self.limits.with(|limits| {
                f.debug_map()
                    .entries(limits.iter().map(|(name, entry)| (name, entry.size)))
                    .finish()
            })
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
