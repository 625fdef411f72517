//! Gives the recipe cache a hash of what decides how a recipe file parses: the schema, the name
//! checks, the crate's dependencies and the locked crate versions (the TOML parser's among them).
//! A cache written by a spy that parses differently is then ignored, not misread.

use std::hash::{Hash, Hasher};
use std::path::Path;

fn main() {
    let inputs = ["src/schema.rs", "src/names.rs", "Cargo.toml", "../../Cargo.lock"];
    // Every `DefaultHasher::new()` starts the same (only another Rust may hash differently, which
    // just starts a new cache).
    let mut h = std::hash::DefaultHasher::new();
    for input in inputs {
        println!("cargo:rerun-if-changed={input}");
        std::fs::read(Path::new(input)).unwrap_or_default().hash(&mut h);
    }
    println!("cargo:rustc-env=SPY_RECIPE_SCHEMA_HASH={:016x}", h.finish());
}
