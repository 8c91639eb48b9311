//! The repository's layout rules (ARCHITECTURE.md, "Where things live"):
//! every source file of a member crate is named in its crate's rows of the
//! table, so the map cannot drift from the tree; and no source file holds
//! more than 700 lines (one concept per file; long unit tests move to a
//! `<file>_tests.rs` child module). Files are named in backticks:
//! `file.rs`, `path/file.rs`, a folder's `stem`, or the folder `dir/`.

use std::path::{Path, PathBuf};

const CRATES: &[&str] = &["geo_index", "ratelimit", "cache", "matching", "pricing"];
const MAX_LINES: usize = 700;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir)
        .expect("readable source dir")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The table rows of `krate`: from its first row to the next crate's.
fn rows_of(table: &str, krate: &str) -> String {
    let mut rows = String::new();
    let mut inside = false;
    for line in table.lines().filter(|l| l.starts_with('|')) {
        let first = line.split('|').nth(1).unwrap_or("").trim();
        if !first.is_empty() {
            inside = first == krate;
        }
        if inside {
            rows.push_str(line);
            rows.push('\n');
        }
    }
    rows
}

#[test]
fn every_source_file_is_on_the_map() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = arch
        .find("## Where things live")
        .expect("the table's section");
    let table = &arch[start..];
    let table = &table[..table[3..].find("\n## ").map_or(table.len(), |e| e + 3)];
    let mut missing = Vec::new();
    for krate in CRATES {
        let rows = rows_of(table, krate);
        assert!(!rows.is_empty(), "no rows for {krate}");
        let src = root().join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let rel = f.strip_prefix(&src).expect("under src");
            let top = rel
                .components()
                .next()
                .expect("a file")
                .as_os_str()
                .to_string_lossy()
                .into_owned();
            let stem = f
                .file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            let is_test = top == "tests" || stem.ends_with("_tests");
            if stem == "lib" || is_test && stem != top {
                continue;
            }
            // Named as `file.rs`, `path/file.rs`, `stem` (in a folder's
            // row) or by its folder, `dir/`.
            let path = rel.to_string_lossy().replace('\\', "/");
            let named = [
                format!("`{stem}.rs`"),
                format!("`{path}`"),
                format!("`{stem}`"),
            ]
            .iter()
            .any(|n| rows.contains(n.as_str()))
                || rel.components().count() > 1 && rows.contains(&format!("`{top}/`"));
            if !named {
                missing.push(format!("{krate}/src/{}", rel.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in ARCHITECTURE.md's 'Where things live': {missing:?}"
    );
}

#[test]
fn no_source_file_is_over_700_lines() {
    let mut files = Vec::new();
    for krate in CRATES {
        rust_files(&root().join(krate).join("src"), &mut files);
    }
    rust_files(&root().join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}
