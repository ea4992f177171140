//! A glob pattern expanded on disk, bounded, and without following what its source may not.
//!
//! Exists because the `glob` crate's walk follows every symlink, `**` included, and turns a `.?`
//! component into `..`: an etcd pattern could leave its allowed tree through a planted
//! directory symlink, and two `ln -s . x` loops under a `**` kept the one file-server thread
//! walking for over 30 s. Here a directory is listed with `read_dir` and each entry's type taken
//! from the entry itself (never followed); `.` and `..` are never produced; a `**` never descends
//! into a symlinked directory, and below the root of an `Access::Beneath` nothing symlinked is
//! followed at all (the confined open would refuse it anyway: this keeps discovery from even
//! naming files out there). Every walk is capped in depth, entries looked at and time, and says
//! so when a cap cut it short. The `glob` crate still matches each component (`Pattern`).
//!
//! One walk gives both the matching files and the directories it listed: the directories where
//! a new name can make a new match, which the file server watches.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use glob::Pattern;

use crate::confine::Access;
use crate::pattern::{is_glob, literal_prefix, MATCH};

/// Directories a `**` descends below where it stands.
pub const MAX_DEPTH: usize = 16;
/// Directory entries one walk looks at. A scan of 10,000 files in one directory looks at
/// 10,000; this is ten times that.
pub const MAX_ENTRIES: usize = 100_000;
/// How long one walk may take (it runs on the file server's one thread).
pub const MAX_TIME: Duration = Duration::from_secs(2);

/// What a walk found.
#[derive(Debug, Default)]
pub struct Walk {
    /// Regular files matching the pattern (symlinks to them where `Access::Follow`), sorted.
    pub files: BTreeSet<PathBuf>,
    /// Directories listed: where a new name can make a match.
    pub dirs: BTreeSet<PathBuf>,
    /// Caps reached, directories that could not be read, symlinks left out; each names the
    /// pattern.
    pub problems: Vec<String>,
    /// Directories that are there but could not be listed or looked in (a mode that shuts the
    /// agent out, an I/O error): what they held is unknown, not gone.
    pub unlisted: BTreeSet<PathBuf>,
}

enum Part {
    /// `**`: any number of directories.
    Any,
    /// A component without glob characters: looked up, not listed.
    Literal(String),
    Glob(Pattern),
}

struct State<'a> {
    pattern: &'a Path,
    follow: bool,
    entries: usize,
    started: Instant,
    cut: Option<String>,
    out: Walk,
}

impl State<'_> {
    /// Counts one entry; false once a cap is reached (the walk then unwinds).
    fn count(&mut self) -> bool {
        if self.cut.is_some() {
            return false;
        }
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            self.cut = Some(format!("more than {MAX_ENTRIES} directory entries"));
        } else if self.entries.is_multiple_of(256) && self.started.elapsed() > MAX_TIME {
            self.cut = Some(format!("longer than {MAX_TIME:?}"));
        }
        self.cut.is_none()
    }
}

/// Expands `pattern` under `access`.
pub fn walk(pattern: &Path, access: &Access) -> Walk {
    let text = pattern.to_string_lossy();
    let start = literal_prefix(pattern);
    let mut parts = Vec::new();
    for c in pattern.components().skip(start.components().count()) {
        let Component::Normal(c) = c else {
            return problem(format!("{text}: a '.' or '..' component; not expanded"));
        };
        let c = c.to_string_lossy();
        parts.push(match c.as_ref() {
            "**" => Part::Any,
            c if !is_glob(c) => Part::Literal(c.to_string()),
            c => match Pattern::new(c) {
                Ok(p) => Part::Glob(p),
                Err(e) => return problem(format!("{text:?} is not a valid glob pattern: {e}")),
            },
        });
    }
    if matches!(parts.last(), Some(Part::Any)) {
        parts.push(Part::Glob(Pattern::new("*").expect("a valid pattern")));
    }
    let mut st = State {
        pattern,
        follow: matches!(access, Access::Follow),
        entries: 0,
        started: Instant::now(),
        cut: None,
        out: Walk::default(),
    };
    if let Access::Beneath(root) = access {
        // The directories between the root and where the wildcards begin are named by the
        // pattern's text: none of them may be a symlink either.
        if let Some(link) = symlink_between(root, &start) {
            st.out.problems.push(format!("{text}: {} is a symlink (not followed); not expanded", link.display()));
            return st.out;
        }
    }
    if parts.is_empty() {
        return st.out;
    }
    go(&mut st, start, &parts, 0);
    if let Some(cut) = st.cut.take() {
        st.out.problems.push(format!("{text}: walk stopped after {cut}; files beyond are left out"));
    }
    st.out
}

fn problem(text: String) -> Walk {
    Walk { problems: vec![text], ..Walk::default() }
}

/// The first symlink among the directories below `root` down to `dir` (None when `dir` is not
/// below `root`: the caller's checks said it is).
fn symlink_between(root: &Path, dir: &Path) -> Option<PathBuf> {
    let rest = dir.strip_prefix(root).ok()?;
    let mut at = root.to_path_buf();
    for c in rest.components() {
        at.push(c);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Some(at);
        }
    }
    None
}

/// What an entry is, without following it; a symlink only where the walk may follow.
#[derive(PartialEq)]
enum Kind {
    File,
    Dir,
    Other,
    /// A symlink the walk may not follow.
    Link,
}

fn kind(path: &Path, file_type: std::io::Result<std::fs::FileType>, follow: bool) -> Kind {
    let Ok(t) = file_type else { return Kind::Other };
    let t = if t.is_symlink() {
        if !follow {
            return Kind::Link;
        }
        match std::fs::metadata(path) {
            Ok(m) => m.file_type(),
            Err(_) => return Kind::Other,
        }
    } else {
        t
    };
    if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Dir
    } else {
        Kind::Other
    }
}

/// Matches `parts` in `dir`, depth-first.
fn go(st: &mut State, dir: PathBuf, parts: &[Part], depth: usize) {
    let (first, rest) = parts.split_first().expect("never called with no parts");
    if let Part::Literal(name) = first {
        // No listing: a literal component is looked up by name.
        let path = dir.join(name);
        let meta = std::fs::symlink_metadata(&path);
        if let Err(e) = &meta {
            if e.kind() != std::io::ErrorKind::NotFound {
                st.out.problems.push(format!("{}: cannot look in {}: {e}", st.pattern.display(), dir.display()));
                st.out.unlisted.insert(dir.clone());
            }
        }
        let k = kind(&path, meta.map(|m| m.file_type()), st.follow);
        st.out.dirs.insert(dir);
        return step(st, path, k, rest, depth);
    }
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                st.out.problems.push(format!("{}: cannot read {}: {e}", st.pattern.display(), dir.display()));
                st.out.unlisted.insert(dir);
            }
            return;
        }
    };
    st.out.dirs.insert(dir.clone());
    if let Part::Any = first {
        // Zero directories.
        go(st, dir.clone(), rest, depth);
    }
    for entry in rd.flatten() {
        if !st.count() {
            return;
        }
        let path = entry.path();
        match first {
            Part::Any => {
                // `**` never follows a symlinked directory, whatever the access.
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    if depth >= MAX_DEPTH {
                        st.cut.get_or_insert_with(|| format!("{MAX_DEPTH} directories deep"));
                        continue;
                    }
                    go(st, path, parts, depth + 1);
                }
            }
            Part::Glob(p) => {
                if p.matches_with(&entry.file_name().to_string_lossy(), MATCH) {
                    let k = kind(&path, entry.file_type(), st.follow);
                    step(st, path, k, rest, depth);
                }
            }
            Part::Literal(_) => unreachable!("handled above"),
        }
    }
}

/// One matched entry: a file at the pattern's end, a directory to go on in.
fn step(st: &mut State, path: PathBuf, k: Kind, rest: &[Part], depth: usize) {
    match (k, rest.is_empty()) {
        (Kind::File, true) => {
            st.out.files.insert(path);
        }
        (Kind::Dir, false) => go(st, path, rest, depth + 1),
        (Kind::Link, _) => st.out.problems.push(format!(
            "{}: matched by {}, but it is a symlink (not followed: follow_symlinks is off for this source); left out",
            path.display(),
            st.pattern.display()
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(root: &Path, set: &BTreeSet<PathBuf>) -> Vec<String> {
        set.iter().map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn double_star_does_not_follow_loops_and_is_bounded() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/x.log"), b"").unwrap();
        symlink(".", root.join("a/loop1")).unwrap();
        symlink("..", root.join("a/b/loop2")).unwrap();
        let started = Instant::now();
        for access in [Access::Follow, Access::beneath(&root)] {
            let w = walk(&root.join("**/nomatch.log"), &access);
            assert!(w.files.is_empty());
            let w = walk(&root.join("**/*.log"), &access);
            assert_eq!(names(&root, &w.files), ["a/b/x.log"]);
            assert_eq!(names(&root, &w.dirs), ["", "a", "a/b"]);
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        // Deeper than the cap: cut, and said.
        let deep: PathBuf = (0..MAX_DEPTH + 2).fold(root.join("d"), |p, i| p.join(i.to_string()));
        std::fs::create_dir_all(&deep).unwrap();
        let w = walk(&root.join("d/**/*.log"), &Access::Follow);
        assert!(w.problems.iter().any(|p| p.contains("directories deep")), "{:?}", w.problems);
    }

    #[test]
    fn beneath_a_root_no_symlink_is_followed_and_dot_dot_never_matches() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("logs/app")).unwrap();
        std::fs::create_dir_all(root.join("secret")).unwrap();
        std::fs::write(root.join("secret/shadow"), b"").unwrap();
        std::fs::write(root.join("logs/app/a.log"), b"").unwrap();
        symlink(root.join("secret"), root.join("logs/app/conf")).unwrap();
        symlink(root.join("secret/shadow"), root.join("logs/app/s.log")).unwrap();
        let beneath = Access::beneath(root.join("logs"));
        // The attack: `.?` is not `..`, and the symlinked directory is not entered.
        let w = walk(&root.join("logs/*/conf/.?/shadow"), &beneath);
        assert!(w.files.is_empty(), "{:?}", w.files);
        let w = walk(&root.join("logs/*/*"), &beneath);
        assert_eq!(names(&root, &w.files), ["logs/app/a.log"]);
        assert!(w.problems.iter().any(|p| p.contains("s.log") && p.contains("symlink")), "{:?}", w.problems);
        let w = walk(&root.join("logs/app/conf/*"), &beneath);
        assert!(w.files.is_empty() && w.problems[0].contains("is a symlink"), "{:?}", w);
        // Following, as config.yaml's follow_symlinks: true asks (but never `**` into a link).
        let w = walk(&root.join("logs/app/conf/*"), &Access::Follow);
        assert_eq!(names(&root, &w.files), ["logs/app/conf/shadow"]);
        let w = walk(&root.join("logs/**/shadow"), &Access::Follow);
        assert!(w.files.is_empty());
    }

    #[test]
    fn entries_are_capped() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        for i in 0..300 {
            std::fs::create_dir(root.join(format!("d{i}"))).unwrap();
            std::fs::write(root.join(format!("d{i}/a.log")), b"").unwrap();
        }
        let mut st = State {
            pattern: &root,
            follow: false,
            entries: MAX_ENTRIES - 10,
            started: Instant::now(),
            cut: None,
            out: Walk::default(),
        };
        go(&mut st, root.clone(), &[Part::Any, Part::Glob(Pattern::new("*.log").unwrap())], 0);
        assert!(st.cut.is_some_and(|c| c.contains("entries")));
        assert!(st.out.files.len() < 300);
    }
}
