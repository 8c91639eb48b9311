//! Declares the `fuzzing` cfg under which the invariant checkers
//! (`validate`) are compiled outside tests.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
