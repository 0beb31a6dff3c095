//! The import graph between the files of `src/`: which file uses items of which other file, through
//! `crate::`, `super::`, `self::` and child-module paths (in `use` trees and in code), with re-exports
//! followed to the file that defines the item. Two checks on it:
//!
//! - **No cycles between files**: a file may use its ancestors' items (a child using its parent's
//!   items through `super::` is how Rust modules work); every other edge must keep the graph acyclic.
//! - **Layers**: each top-level module of the library has a rank (`LAYERS`); a file may use only
//!   modules of its own layer or of layers below it, and a few pairs are forbidden outright.
//!
//! Std only, so that `.ci/check-layers.sh` compiles it with `rustc` in a second and `tests/architecture.rs`
//! includes the same file (`#[path]`): one implementation for CI and for `cargo test`.
//! Usage: `import_graph SRC_DIR` prints the problems and exits 1 if there are any.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's layers, from the bottom: a file in layer `i` may use layers `0..=i` (same rank: the
/// modules of one row may not use each other, except where `SAME_ROW_ALLOWED` says so).
pub const LAYERS: &[&[&str]] = &[
    &["escape", "grading", "stats"],
    &["imaging"],
    &["kernels", "pacs", "phantom", "session"],
    &["model"],
    &["report", "train"],
    &["gui"],
    &["assets"],
];

/// Uses between modules of one row that are allowed.
pub const SAME_ROW_ALLOWED: &[(&str, &str)] = &[];

/// Uses forbidden although the ranks would allow them.
pub const FORBIDDEN: &[(&str, &str)] = &[
    ("train", "phantom"),
    ("train", "report"),
    ("model", "phantom"),
    ("model", "session"),
];

/// Modules any layer may use (plain data, no logic worth layering).
pub const ANYWHERE: &[&str] = &["assets"];

/// One `.rs` file and the module path it defines.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the source folder's parent (e.g. `src/model/mod.rs`).
    pub path: String,
    /// Module path, first segment the crate (`lib` or `bin`).
    pub module: Vec<String>,
}

/// The graph: files, the module table and the edges between files.
#[derive(Debug, Default)]
pub struct ImportGraph {
    /// Files, in the order they were found.
    pub files: Vec<SourceFile>,
    /// Module path (joined with `::`) to the index of the file that holds it (inline modules included).
    modules: BTreeMap<String, usize>,
    /// Per module path: names imported by `use` (alias -> absolute path).
    imports: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Edges between file indices, with one example path for each.
    pub edges: BTreeMap<(usize, usize), String>,
    /// Problems met while reading (unreadable files, undeclared modules).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Path, // ::
    Open,
    Close,
    Semi,
    Comma,
    Star,
    Other,
}

/// Identifiers and the punctuation paths need, with comments, strings and characters removed.
fn tokens(src: &str) -> Vec<Tok> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0usize;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) && {
            let mut j = i + 1;
            while j < b.len() && b[j] == b'#' {
                j += 1;
            }
            b.get(j) == Some(&b'"')
        } {
            // raw string r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"'
                    && b[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == b'#')
                        .count()
                        == hashes
                {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push(Tok::Other);
        } else if c == b'"' || (c == b'b' && b.get(i + 1) == Some(&b'"')) {
            i += if c == b'b' { 2 } else { 1 };
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Other);
        } else if c == b'\'' {
            // char literal or lifetime
            if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
            } else {
                // lifetime: skip the quote and the name
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
            }
            out.push(Tok::Other);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let word = &src[s..i];
            // r#ident
            out.push(Tok::Ident(word.to_string()));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                if b[i] == b'.' && b.get(i + 1) == Some(&b'.') {
                    break;
                }
                i += 1;
            }
            out.push(Tok::Other);
        } else {
            i += 1;
            out.push(match c {
                b':' if b.get(i) == Some(&b':') => {
                    i += 1;
                    Tok::Path
                }
                b'{' => Tok::Open,
                b'}' => Tok::Close,
                b';' => Tok::Semi,
                b',' => Tok::Comma,
                b'*' => Tok::Star,
                b' ' | b'\n' | b'\t' | b'\r' => continue,
                _ => Tok::Other,
            });
        }
    }
    out
}

/// A `use` tree expanded into (alias, path) pairs; `*` gives the alias `*`.
fn use_tree(
    toks: &[Tok],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(String, Vec<String>)>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(i) {
            Some(Tok::Ident(w)) => {
                if w == "as" {
                    if let Some(Tok::Ident(alias)) = toks.get(i + 1) {
                        out.push((alias.clone(), path.clone()));
                        return i + 2;
                    }
                    return i + 1;
                }
                path.push(w.clone());
                i += 1;
                if toks.get(i) == Some(&Tok::Path) {
                    i += 1;
                    continue;
                }
                if toks.get(i) == Some(&Tok::Ident("as".into())) {
                    continue;
                }
                let alias = if w == "self" {
                    path.pop();
                    path.last().cloned().unwrap_or_default()
                } else {
                    w.clone()
                };
                out.push((alias, path));
                return i;
            }
            Some(Tok::Star) => {
                out.push(("*".into(), path));
                return i + 1;
            }
            Some(Tok::Open) => {
                i += 1;
                loop {
                    match toks.get(i) {
                        Some(Tok::Close) => return i + 1,
                        Some(Tok::Comma) => i += 1,
                        None => return i,
                        _ => {
                            let before = i;
                            i = use_tree(toks, i, &path, out);
                            if i == before {
                                i += 1;
                            }
                        }
                    }
                }
            }
            _ => return i,
        }
    }
}

/// What one file says: child modules declared with `mod x;`, inline modules, `use` imports and paths.
struct FileFacts {
    /// (module path relative to the file's module, child name) of `mod x;` declarations.
    children: Vec<(Vec<String>, String)>,
    /// Inline `mod x { … }` modules, relative to the file's module.
    inline: Vec<Vec<String>>,
    /// (relative module where it appears, alias, path as written) of `use` imports.
    uses: Vec<(Vec<String>, String, Vec<String>)>,
    /// (relative module where it appears, path as written) of paths in code.
    paths: Vec<(Vec<String>, Vec<String>)>,
}

fn facts(src: &str) -> FileFacts {
    let toks = tokens(src);
    let mut f = FileFacts {
        children: vec![],
        inline: vec![],
        uses: vec![],
        paths: vec![],
    };
    let mut scope: Vec<(String, usize)> = Vec::new(); // (inline module, brace depth where it opened)
    let mut depth = 0usize;
    let mut i = 0;
    let here =
        |scope: &Vec<(String, usize)>| scope.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>();
    while i < toks.len() {
        match &toks[i] {
            Tok::Open => {
                depth += 1;
                i += 1;
            }
            Tok::Close => {
                if scope.last().is_some_and(|(_, d)| *d == depth) {
                    scope.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                    match toks.get(i + 2) {
                        Some(Tok::Semi) => f.children.push((here(&scope), name.clone())),
                        Some(Tok::Open) => {
                            let mut m = here(&scope);
                            m.push(name.clone());
                            f.inline.push(m);
                            scope.push((name.clone(), depth + 1));
                        }
                        _ => {}
                    }
                }
                i += 2;
            }
            Tok::Ident(w)
                if w == "use" && !matches!(toks.get(i.wrapping_sub(1)), Some(Tok::Path)) =>
            {
                let mut out = Vec::new();
                i = use_tree(&toks, i + 1, &[], &mut out);
                for (alias, p) in out {
                    f.uses.push((here(&scope), alias, p));
                }
            }
            Tok::Ident(w)
                if toks.get(i + 1) == Some(&Tok::Path)
                    && !matches!(toks.get(i.wrapping_sub(1)), Some(Tok::Path)) =>
            {
                let mut p = vec![w.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::Path) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(n)) => {
                            p.push(n.clone());
                            j += 2;
                        }
                        _ => {
                            j += 1;
                            break;
                        }
                    }
                }
                f.paths.push((here(&scope), p));
                i = j;
            }
            _ => i += 1,
        }
    }
    f
}

impl ImportGraph {
    /// Reads every module reachable from `src/lib.rs` and `src/main.rs` under `root` (the crate folder).
    pub fn read(root: &Path) -> Self {
        let mut g = ImportGraph::default();
        let mut pending: Vec<(PathBuf, Vec<String>)> = Vec::new();
        for (file, krate) in [("src/lib.rs", "lib"), ("src/main.rs", "bin")] {
            if root.join(file).exists() {
                pending.push((root.join(file), vec![krate.to_string()]));
            }
        }
        let mut all_facts = Vec::new();
        while let Some((path, module)) = pending.pop() {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    g.errors
                        .push(format!("{}: cannot read: {e}", path.display()));
                    continue;
                }
            };
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let idx = g.files.len();
            g.files.push(SourceFile {
                path: rel,
                module: module.clone(),
            });
            g.modules.insert(module.join("::"), idx);
            let ff = facts(&text);
            // A file's children live beside it (lib.rs, main.rs, mod.rs) or in a folder of its name.
            let is_dir_owner = path
                .file_name()
                .is_some_and(|n| n == "lib.rs" || n == "main.rs" || n == "mod.rs");
            let base = if is_dir_owner {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                path.with_extension("")
            };
            for inline in &ff.inline {
                let mut m = module.clone();
                m.extend(inline.iter().cloned());
                g.modules.insert(m.join("::"), idx);
            }
            for (within, child) in &ff.children {
                let mut dir = base.clone();
                for w in within {
                    dir = dir.join(w);
                }
                let mut m = module.clone();
                m.extend(within.iter().cloned());
                m.push(child.clone());
                let a = dir.join(format!("{child}.rs"));
                let b = dir.join(child).join("mod.rs");
                if a.exists() {
                    pending.push((a, m));
                } else if b.exists() {
                    pending.push((b, m));
                } else {
                    g.errors
                        .push(format!("{}: module {child} has no file", g.files[idx].path));
                }
            }
            all_facts.push((idx, ff));
        }
        // Imports per module, absolute.
        for (idx, ff) in &all_facts {
            for (within, alias, p) in &ff.uses {
                let mut here = g.files[*idx].module.clone();
                here.extend(within.iter().cloned());
                if let Some(abs) = g.absolute(&here, p) {
                    g.imports
                        .entry(here.join("::"))
                        .or_default()
                        .insert(alias.clone(), abs);
                }
            }
        }
        // Edges.
        for (idx, ff) in &all_facts {
            let mut refs: Vec<(Vec<String>, Vec<String>)> = ff
                .uses
                .iter()
                .map(|(w, _, p)| (w.clone(), p.clone()))
                .collect();
            refs.extend(ff.paths.iter().cloned());
            for (within, p) in refs {
                let mut here = g.files[*idx].module.clone();
                here.extend(within.iter().cloned());
                let Some(abs) = g.absolute(&here, &p) else {
                    continue;
                };
                let Some(target) = g.defining_file(&abs, 0) else {
                    continue;
                };
                if target == *idx || g.is_ancestor(target, *idx) {
                    continue;
                }
                g.edges
                    .entry((*idx, target))
                    .or_insert_with(|| p.join("::"));
            }
        }
        g
    }

    /// A path as written in module `here`, made absolute; `None` for other crates and the prelude.
    fn absolute(&self, here: &[String], p: &[String]) -> Option<Vec<String>> {
        let first = p.first()?;
        let krate = here.first()?.clone();
        let mut abs: Vec<String>;
        let mut rest = &p[1..];
        match first.as_str() {
            "crate" => abs = vec![krate],
            "sacro" if krate == "bin" => abs = vec!["lib".into()],
            "self" => abs = here.to_vec(),
            "super" => {
                abs = here.to_vec();
                abs.pop();
                while rest.first().is_some_and(|s| s == "super") {
                    abs.pop();
                    rest = &rest[1..];
                }
            }
            name => {
                let mut m = here.to_vec();
                m.push(name.to_string());
                if self.modules.contains_key(&m.join("::")) {
                    abs = m;
                } else if let Some(imported) =
                    self.imports.get(&here.join("::")).and_then(|i| i.get(name))
                {
                    abs = imported.clone();
                } else {
                    return None;
                }
            }
        }
        abs.extend(rest.iter().cloned());
        if abs.is_empty() { None } else { Some(abs) }
    }

    /// The file that defines what `abs` names: its longest module prefix, through re-exports.
    fn defining_file(&self, abs: &[String], hops: usize) -> Option<usize> {
        let mut n = abs.len();
        while n > 0 {
            let key = abs[..n].join("::");
            if let Some(&file) = self.modules.get(&key) {
                if n < abs.len()
                    && hops < 8
                    && let Some(target) = self.imports.get(&key).and_then(|i| i.get(&abs[n]))
                {
                    let mut next = target.clone();
                    next.extend(abs[n + 1..].iter().cloned());
                    if next != abs {
                        return self.defining_file(&next, hops + 1).or(Some(file));
                    }
                }
                return Some(file);
            }
            n -= 1;
        }
        None
    }

    /// Whether file `a` holds an ancestor module of file `b`'s module.
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        let (ma, mb) = (&self.files[a].module, &self.files[b].module);
        ma.len() < mb.len() && mb[..ma.len()] == ma[..]
    }

    /// The strongly connected groups of more than one file (sorted), each with one cycle through it.
    pub fn cycles(&self) -> Vec<(Vec<usize>, Vec<usize>)> {
        let n = self.files.len();
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in self.edges.keys() {
            adj[a].push(b);
        }
        // Tarjan, iterative enough for a few hundred files (recursion depth = file count).
        struct T<'a> {
            adj: &'a [Vec<usize>],
            index: Vec<Option<usize>>,
            low: Vec<usize>,
            on: Vec<bool>,
            stack: Vec<usize>,
            next: usize,
            out: Vec<Vec<usize>>,
        }
        fn visit(t: &mut T, v: usize) {
            t.index[v] = Some(t.next);
            t.low[v] = t.next;
            t.next += 1;
            t.stack.push(v);
            t.on[v] = true;
            for &w in &t.adj[v].clone() {
                match t.index[w] {
                    None => {
                        visit(t, w);
                        t.low[v] = t.low[v].min(t.low[w]);
                    }
                    Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                    _ => {}
                }
            }
            if Some(t.low[v]) == t.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = t.stack.pop() {
                    t.on[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    t.out.push(comp);
                }
            }
        }
        let mut t = T {
            adj: &adj,
            index: vec![None; n],
            low: vec![0; n],
            on: vec![false; n],
            stack: vec![],
            next: 0,
            out: vec![],
        };
        for v in 0..n {
            if t.index[v].is_none() {
                visit(&mut t, v);
            }
        }
        t.out
            .into_iter()
            .map(|comp| {
                // One cycle inside the component: breadth-first from its first file back to it.
                let set: BTreeSet<usize> = comp.iter().copied().collect();
                let start = *set.iter().next().unwrap_or(&comp[0]);
                let mut prev = vec![usize::MAX; n];
                let mut queue = std::collections::VecDeque::from([start]);
                let mut found = None;
                while let Some(v) = queue.pop_front() {
                    for &w in &adj[v] {
                        if !set.contains(&w) {
                            continue;
                        }
                        if w == start {
                            found = Some(v);
                            break;
                        }
                        if prev[w] == usize::MAX {
                            prev[w] = v;
                            queue.push_back(w);
                        }
                    }
                    if found.is_some() {
                        break;
                    }
                }
                let mut cycle = vec![start];
                let mut v = found.unwrap_or(start);
                let mut back = Vec::new();
                while v != start && back.len() <= n {
                    back.push(v);
                    v = prev[v];
                }
                back.reverse();
                cycle.extend(back);
                cycle.push(start);
                (set.into_iter().collect(), cycle)
            })
            .collect()
    }

    /// Uses between top-level library modules that break `LAYERS`/`FORBIDDEN`.
    pub fn layer_violations(&self) -> Vec<String> {
        let rank = |m: &str| LAYERS.iter().position(|row| row.contains(&m));
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (&(a, b), example) in &self.edges {
            let (ma, mb) = (&self.files[a].module, &self.files[b].module);
            if ma[0] != "lib" || mb[0] != "lib" || ma.len() < 2 || mb.len() < 2 {
                continue;
            }
            let (la, lb) = (ma[1].as_str(), mb[1].as_str());
            if la == lb || ANYWHERE.contains(&lb) {
                continue;
            }
            let bad = match (rank(la), rank(lb)) {
                (Some(ra), Some(rb)) => {
                    rb > ra
                        || (rb == ra && !SAME_ROW_ALLOWED.contains(&(la, lb)))
                        || FORBIDDEN.contains(&(la, lb))
                }
                _ => true,
            };
            if bad && seen.insert((a, b)) {
                out.push(format!(
                    "{} uses {} ({example}): layer {la} may not use layer {lb}",
                    self.files[a].path, self.files[b].path
                ));
            }
        }
        out
    }

    /// Every problem as one line each: reading errors, cycles, layer violations.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.errors.clone();
        for (group, cycle) in self.cycles() {
            let names: Vec<&str> = group.iter().map(|&i| self.files[i].path.as_str()).collect();
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    format!(
                        "{} -[{}]-> {}",
                        self.files[w[0]].path,
                        self.edges.get(&(w[0], w[1])).map_or("?", |s| s.as_str()),
                        self.files[w[1]].path
                    )
                })
                .collect();
            out.push(format!(
                "import cycle among {} files ({}), for example:\n    {}",
                names.len(),
                names.join(", "),
                steps.join("\n    ")
            ));
        }
        out.extend(self.layer_violations());
        out
    }
}

#[cfg(not(test))]
#[allow(unreachable_pub)]
fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let g = ImportGraph::read(Path::new(&root));
    let problems = g.problems();
    for p in &problems {
        eprintln!("layering: {p}");
    }
    println!(
        "import graph: {} files, {} edges, {} problems",
        g.files.len(),
        g.edges.len(),
        problems.len()
    );
    std::process::exit(if problems.is_empty() { 0 } else { 1 });
}
