//! The shape of the code, checked like behaviour (issue 25): the modules' imports form no circle
//! (a lower layer owns its message types, nothing imports back up), and a function longer than
//! 60 lines says why in its doc comment. Read from the source text: `use` lines and `crate::` /
//! `super::` paths outside `#[cfg(test)]` blocks, resolved to the longest module that exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Every `.rs` file under `src` with its module path (`etcd::watcher`; `lib.rs` and `main.rs`
/// are the crate root and the binary, left out).
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(SRC), &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(SRC).unwrap().with_extension("");
        let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        if parts.last().is_some_and(|l| l == "mod") {
            parts.pop();
        }
        if parts == ["lib"] || parts == ["main"] {
            continue;
        }
        out.insert(parts.join("::"), f);
    }
    out
}

/// The text outside `#[cfg(test)]` items and comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| !l.trim_start().starts_with("#[cfg(test)]"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file refers to: `crate::a::b`, `super::c`, and the items of
/// `use crate::{a, b::c}` groups.
fn references(module: &str, text: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| p.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
            .take_while(|p| !p.is_empty())
            .collect()
    };
    let mut out = Vec::new();
    let parent: Vec<String> = {
        let mut p: Vec<String> = module.split("::").map(str::to_string).collect();
        p.pop();
        p
    };
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            // `crate::` inside a longer name (`logcatch_crate::`) is not one.
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    out.push(base.iter().cloned().chain(ident(item)).collect());
                }
            } else {
                out.push(base.iter().cloned().chain(ident(rest)).collect());
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, file) in &mods {
        let edges = g.entry(m.clone()).or_default();
        for path in references(m, &code(file)) {
            // The longest prefix that is a module.
            let target = (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|p| mods.contains_key(p));
            if let Some(t) = target {
                if &t != m {
                    edges.insert(t);
                }
            }
        }
    }
    g
}

/// A circle in `g`, if any, as the modules along it.
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_module_imports_form_no_circle() {
    let g = graph();
    assert!(g.len() > 30, "the modules were found: {:?}", g.keys());
    assert!(g["server"].contains("desired") && g["agent"].contains("server"), "imports are read: {g:?}");
    if let Some(c) = circle(&g) {
        panic!("an import circle: {}", c.join(" -> "));
    }
}

#[test]
fn the_circle_finder_finds_one() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(circle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(
        references("etcd::watcher", "use super::client::{A};\nuse crate::{server::Event, failpoint};"),
        [
            vec!["server".to_string(), "Event".to_string()],
            vec!["failpoint".to_string()],
            vec!["etcd".to_string(), "client".to_string()],
        ]
    );
}

/// Functions longer than this many lines say why in their doc comment ("Long on purpose: ...").
const LONG: usize = 60;

/// Every function of `text` (outside tests): its name, first line, length in lines, and doc.
fn functions(text: &str) -> Vec<(String, usize, usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let strip = |l: &str| -> String {
        // Braces inside strings, chars and comments do not count.
        let mut out = String::new();
        let (mut in_str, mut esc) = (false, false);
        let b: Vec<char> = l.chars().collect();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if in_str {
                if esc {
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    in_str = false;
                }
            } else if c == '"' {
                in_str = true;
            } else if c == '/' && b.get(i + 1) == Some(&'/') {
                break;
            } else if c == '\'' && b.get(i + 2) == Some(&'\'') {
                i += 2;
            } else if c == '\'' && b.get(i + 1) == Some(&'\\') {
                i += 3;
            } else {
                out.push(c);
            }
            i += 1;
        }
        out
    };
    let mut out = Vec::new();
    let mut n = 0;
    while n < lines.len() {
        let t = lines[n].trim_start();
        let sig = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn ", "unsafe fn ", "pub unsafe fn "]
            .iter()
            .find_map(|p| t.strip_prefix(p));
        let Some(rest) = sig else {
            n += 1;
            continue;
        };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let (mut depth, mut started, mut end) = (0i32, false, n);
        for (k, l) in lines.iter().enumerate().skip(n) {
            let s = strip(l);
            if !started && s.contains(';') && !s.contains('{') {
                break;
            }
            for c in s.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        started = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            end = k;
            if started && depth == 0 {
                break;
            }
        }
        if !started {
            n += 1;
            continue;
        }
        let doc: Vec<&str> = lines[..n]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with("///") || l.trim_start().starts_with("#["))
            .copied()
            .collect();
        out.push((name, n + 1, end - n + 1, doc.join("\n")));
        n = end + 1;
    }
    out
}

#[test]
fn a_long_function_says_why_in_its_doc_comment() {
    let mut unexplained = Vec::new();
    for file in modules().values() {
        for (name, line, len, doc) in functions(&code_with_lines(file)) {
            if len > LONG && !doc.contains("Long on purpose") {
                unexplained.push(format!("{}:{line} {name} ({len} lines)", file.display()));
            }
        }
    }
    assert!(
        unexplained.is_empty(),
        "functions over {LONG} lines without the reason in their doc:\n{}",
        unexplained.join("\n")
    );
}

#[test]
fn the_function_reader_measures_what_it_should() {
    let text = "/// Short.\nfn a() {\n    let s = \"{\";\n    let c = '{';\n}\n\n/// Long on purpose: x.\npub fn b() -> u8 {\n    1\n}\n";
    let f = functions(text);
    assert_eq!(f.len(), 2);
    assert_eq!((f[0].0.as_str(), f[0].2), ("a", 4));
    assert!(f[1].3.contains("Long on purpose"));
}

/// The text before a file's `#[cfg(test)] mod tests`, its lines kept (comments too: the doc
/// comments are read).
fn code_with_lines(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The scripts the README tells people to run are executable as checked out (issue 27 found
/// `scripts/release.sh`, `kafka.sh` and `static-build.sh` were not: `Permission denied`).
#[test]
fn every_script_is_executable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts"));
    let mut checked = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let script = p.extension().is_some_and(|x| x == "sh") || p.file_name().is_some_and(|n| n == "etcd-logconf");
        if script {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "{} is not executable", p.display());
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} scripts found");
}
