//! The crate's structure (ARCHITECTURE.md): no import cycles between the files of `src/`, no layer using
//! a layer above it, no file too large to hold one idea. The same graph code as `.ci/check-layers.sh`.

#[path = "../.ci/import_graph.rs"]
mod import_graph;

use import_graph::ImportGraph;

fn graph() -> ImportGraph {
    ImportGraph::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
}

#[test]
fn no_import_cycles_and_no_upward_imports() {
    let g = graph();
    assert!(g.files.len() > 50, "read only {} files", g.files.len());
    let problems = g.problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker itself finds what it must: a cycle through a parent's re-export, an upward import, a
/// `super::` path inside an inline test module (the file itself, not its parent).
#[test]
fn the_checker_finds_cycles_and_upward_imports() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let write = |rel: &str, text: &str| {
        let p = tmp.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    write("src/lib.rs", "pub mod kernels;\npub mod model;\n");
    write(
        "src/kernels/mod.rs",
        "pub mod a;\npub mod b;\npub use b::Thing;\n",
    );
    // a -> (parent re-export of b) -> b -> a: a cycle although a names only its parent.
    write(
        "src/kernels/a.rs",
        "use super::Thing;\npub struct A;\n#[cfg(test)]\nmod tests { use super::*; }\n",
    );
    write(
        "src/kernels/b.rs",
        "pub struct Thing;\nfn f() -> crate::kernels::a::A { todo!() }\n",
    );
    write("src/model/mod.rs", "pub struct Net;\n");
    write("src/kernels/c.rs", "");
    let g = ImportGraph::read(tmp.path());
    let problems = g.problems().join("\n");
    assert!(
        problems.contains("import cycle among 2 files"),
        "{problems}"
    );
    assert!(problems.contains("src/kernels/a.rs"), "{problems}");
    // No upward import yet; add one.
    assert!(!problems.contains("may not use"), "{problems}");
    write(
        "src/kernels/b.rs",
        "pub struct Thing;\nuse crate::model::Net;\n",
    );
    let g = ImportGraph::read(tmp.path());
    let problems = g.problems().join("\n");
    assert!(
        problems.contains("layer kernels may not use layer model"),
        "{problems}"
    );
    assert!(!problems.contains("import cycle"), "{problems}");
}

/// Files stay small enough to hold one idea: none over 1,000 lines, none in the app over 800.
#[test]
fn no_source_file_is_too_large() {
    let g = graph();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut big = Vec::new();
    for f in &g.files {
        let lines = std::fs::read_to_string(root.join(&f.path))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let limit = if f.path.starts_with("src/gui/") {
            800
        } else {
            1000
        };
        if lines > limit {
            big.push(format!("{} ({lines} lines, limit {limit})", f.path));
        }
    }
    assert!(big.is_empty(), "files too large: {}", big.join(", "));
}
