//! Declares the `fuzzing` cfg under which invariant checkers compile.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
