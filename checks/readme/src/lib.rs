//! Keeps the READMEs honest: every ```` ```rust ```` block of the repository's README and
//! of each published crate's README is compiled and run as a doc test of this crate
//! (`cargo test -p kompoz-readme-check`, part of `cargo test --workspace`), and each block
//! must be a whole program, with its own `fn main`, so that it also works pasted into a
//! fresh project's `src/main.rs`.

/// The repository's README.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct Readme;

/// `kompoz`'s README, shown on crates.io.
#[doc = include_str!("../../../core/README.md")]
#[cfg(doctest)]
pub struct CoreReadme;

/// `kompoz-tokio`'s README.
#[doc = include_str!("../../../adapters/tokio/README.md")]
#[cfg(doctest)]
pub struct TokioReadme;

/// `kompoz-smol`'s README.
#[doc = include_str!("../../../adapters/smol/README.md")]
#[cfg(doctest)]
pub struct SmolReadme;

/// `kompoz-tower`'s README.
#[doc = include_str!("../../../adapters/tower/README.md")]
#[cfg(doctest)]
pub struct TowerReadme;

/// `kompoz-async-std`'s README.
#[doc = include_str!("../../../adapters/async-std/README.md")]
#[cfg(doctest)]
pub struct AsyncStdReadme;

/// `kompoz-embassy`'s README.
#[doc = include_str!("../../../adapters/embassy/README.md")]
#[cfg(doctest)]
pub struct EmbassyReadme;

/// `kompoz-redis`'s README.
#[doc = include_str!("../../../adapters/redis/README.md")]
#[cfg(doctest)]
pub struct RedisReadme;

#[cfg(test)]
mod tests {
    /// Every README, by path, with its text.
    const READMES: [(&str, &str); 8] = [
        ("README.md", include_str!("../../../README.md")),
        ("core/README.md", include_str!("../../../core/README.md")),
        ("adapters/tokio/README.md", include_str!("../../../adapters/tokio/README.md")),
        ("adapters/smol/README.md", include_str!("../../../adapters/smol/README.md")),
        ("adapters/async-std/README.md", include_str!("../../../adapters/async-std/README.md")),
        ("adapters/embassy/README.md", include_str!("../../../adapters/embassy/README.md")),
        ("adapters/redis/README.md", include_str!("../../../adapters/redis/README.md")),
        ("adapters/tower/README.md", include_str!("../../../adapters/tower/README.md")),
    ];

    /// The Rust code blocks of `markdown`, as (first line number, code).
    fn rust_blocks(markdown: &str) -> Vec<(usize, String)> {
        let mut blocks = Vec::new();
        let mut current: Option<(usize, String)> = None;
        for (index, line) in markdown.lines().enumerate() {
            match (&mut current, line.trim_end()) {
                (None, "```rust") => current = Some((index + 2, String::new())),
                (Some(_), "```") => blocks.extend(current.take()),
                (Some((_, code)), line) => {
                    code.push_str(line);
                    code.push('\n');
                }
                (None, _) => {}
            }
        }
        assert!(current.is_none(), "a code block is not closed");
        blocks
    }

    #[test]
    fn every_rust_block_of_every_readme_is_a_whole_program() {
        let mut checked = 0;
        for (path, text) in READMES {
            for (line, code) in rust_blocks(text) {
                // rustdoc would wrap a block without `fn main` in one and still pass it;
                // pasted into a file it would not compile.
                assert!(code.contains("fn main()"), "{path}:{line}: the block has no `fn main`");
                // A hidden line (`# ...`) shows on GitHub and crates.io as it is.
                assert!(
                    !code.lines().any(|l| l == "#" || l.starts_with("# ")),
                    "{path}:{line}: the block hides lines from rustdoc"
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 12,
            "only {checked} Rust blocks found: is the block syntax still ```rust?"
        );
    }

    #[test]
    fn other_fenced_blocks_are_marked_as_not_rust() {
        // An unmarked fence is Rust to rustdoc: mark shell and TOML blocks as such.
        for (path, text) in READMES {
            let mut inside = false;
            for (index, line) in text.lines().enumerate() {
                if let Some(info) = line.trim_end().strip_prefix("```") {
                    if !inside {
                        assert!(
                            !info.is_empty(),
                            "{path}:{}: a fence without a language",
                            index + 1
                        );
                    }
                    inside = !inside;
                }
            }
        }
    }

    #[test]
    fn each_published_crate_points_docs_rs_links_at_its_own_version() {
        // `html_root_url` lets the adapters' docs link to the core's items when the core's
        // docs are not built beside them; it must name the version being published.
        let version = env!("CARGO_PKG_VERSION");
        for (crate_name, source) in [
            ("kompoz", include_str!("../../../core/src/lib.rs")),
            ("kompoz-tokio", include_str!("../../../adapters/tokio/src/lib.rs")),
            ("kompoz-smol", include_str!("../../../adapters/smol/src/lib.rs")),
            ("kompoz-async-std", include_str!("../../../adapters/async-std/src/lib.rs")),
            ("kompoz-embassy", include_str!("../../../adapters/embassy/src/lib.rs")),
            ("kompoz-redis", include_str!("../../../adapters/redis/src/lib.rs")),
            ("kompoz-tower", include_str!("../../../adapters/tower/src/lib.rs")),
        ] {
            let expected =
                format!("#![doc(html_root_url = \"https://docs.rs/{crate_name}/{version}\")]");
            assert!(source.contains(&expected), "{crate_name}: expected {expected}");
        }
    }
}
