//! Combinators made from async closures: [`async_rule`] and [`async_pipe`].

use super::{AsyncCombinator, Outcome};
use core::fmt;
use core::future::Future;

/// Makes a rule from an async closure that checks the context: kompoz's `@async_rule`.
///
/// The closure gets the context as `&mut Ctx` and returns whether it passed.
///
/// ```
/// use kompoz::{AsyncCombinator, async_rule};
///
/// let is_adult = async_rule(async |age: &mut u32| *age >= 18);
/// assert_eq!(futures::executor::block_on(is_adult.run_owned(20)), (true, 20));
/// ```
pub fn async_rule<Ctx: ?Sized, F>(check: F) -> AsyncRule<F>
where
    F: AsyncFn(&mut Ctx) -> bool,
{
    AsyncRule { check }
}

/// A rule made by [`async_rule`]. Its type names the closure, so store it behind a generic
/// parameter (or `impl AsyncCombinator<Ctx>`):
///
/// ```
/// use kompoz::{AsyncCombinator, async_rule};
///
/// struct Checks<R> {
///     adult: R,
/// }
///
/// let checks = Checks { adult: async_rule(async |age: &mut u32| *age >= 18) };
/// assert!(futures::executor::block_on(checks.adult.run(&mut 30)));
/// ```
#[derive(Clone, Copy)]
pub struct AsyncRule<F> {
    check: F,
}

impl<Ctx: ?Sized, F> AsyncCombinator<Ctx> for AsyncRule<F>
where
    F: AsyncFn(&mut Ctx) -> bool,
{
    async fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> Outcome {
        Outcome::from((self.check)(ctx).await)
    }
}

impl<F> fmt::Debug for AsyncRule<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRule").finish_non_exhaustive()
    }
}

/// Makes a transform from an async closure that changes the context: kompoz's
/// `@async_pipe`.
///
/// The closure may return `()` (it always passes) or a `Result` (it passes when `Ok`,
/// as a kompoz transform passes unless it raises).
///
/// ```
/// use kompoz::{AsyncCombinator, async_pipe};
///
/// let double = async_pipe(async |n: &mut i32| *n *= 2);
/// let parse = async_pipe(async |s: &mut String| s.parse::<i32>().map(|_| ()));
///
/// futures::executor::block_on(async {
///     assert_eq!(double.run_owned(21).await, (true, 42));
///     assert_eq!(parse.run_owned("x".to_string()).await, (false, "x".to_string()));
/// });
/// ```
pub fn async_pipe<Ctx: ?Sized, F, R>(transform: F) -> AsyncPipe<F>
where
    F: AsyncFn(&mut Ctx) -> R,
    R: PipeOutput,
{
    AsyncPipe { transform }
}

/// A transform made by [`async_pipe`].
///
/// ```
/// use kompoz::{AsyncCombinator, async_pipe};
///
/// fn normalise() -> impl AsyncCombinator<String> {
///     async_pipe(async |s: &mut String| *s = s.trim().to_lowercase())
/// }
///
/// let (ok, text) = futures::executor::block_on(normalise().run_owned(" Hi ".into()));
/// assert_eq!((ok, text.as_str()), (true, "hi"));
/// ```
#[derive(Clone, Copy)]
pub struct AsyncPipe<F> {
    transform: F,
}

impl<Ctx: ?Sized, F, R> AsyncCombinator<Ctx> for AsyncPipe<F>
where
    F: AsyncFn(&mut Ctx) -> R,
    R: PipeOutput,
{
    // An `async fn` here would capture `R` and need `R: 'a`, which the trait cannot promise;
    // the block below captures only what it uses.
    #[allow(clippy::manual_async_fn)]
    fn run_detailed<'a>(&'a self, ctx: &'a mut Ctx) -> impl Future<Output = Outcome> + 'a {
        async move { Outcome::from((self.transform)(ctx).await.passed()) }
    }
}

impl<F> fmt::Debug for AsyncPipe<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPipe").finish_non_exhaustive()
    }
}

/// What an [`async_pipe`] closure may return: `()` always passes, a `Result` passes when
/// it is `Ok`.
///
/// ```
/// use kompoz::combinator::PipeOutput;
///
/// assert!(().passed());
/// assert!(Ok::<u8, ()>(1).passed());
/// assert!(!Err::<u8, &str>("bad input").passed());
/// ```
pub trait PipeOutput {
    /// Whether the transform passed.
    fn passed(&self) -> bool;
}

impl PipeOutput for () {
    fn passed(&self) -> bool {
        true
    }
}

impl<T, E> PipeOutput for Result<T, E> {
    fn passed(&self) -> bool {
        self.is_ok()
    }
}
