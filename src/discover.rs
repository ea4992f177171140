//! The file discoverer: selectors (paths and glob patterns) expanded into the files they name.
//!
//! Exists so that "which files does `/var/log/app/*.log` mean right now" is one plain function,
//! separate from the threads that act on the answer (Vector's paths provider plays this part). A
//! literal path always names its file, present or not (its tail waits for it). A glob names the
//! regular files that match it now, less those an `exclude` pattern matches, compressed rotated
//! files (`.gz`, `.xz`, ...), the agent's own log (shipping it would log more lines, without
//! end), files older than `ignore_older` that no tail has open yet, and, for sources from etcd,
//! files the allowlist refuses (`etcd_denied_paths`). Globs are walked by `globwalk`: bounded, and
//! following no symlink the selector's `Access` forbids.
//! The file server calls it on every rescan: at start, when a watched directory gains or loses a
//! file, and every `scan_frequency`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use glob::Pattern;

use crate::confine::{Access, Allowlist};
use crate::desired::TailSpec;
use crate::envelope::Format;
use crate::selector::Selector;

pub use crate::pattern::MATCH;

/// Files one glob may name; more are left out with a problem reported.
pub const MAX_FILES_PER_GLOB: usize = 10_000;

/// Directories watched for one glob; beyond them, new files are found every `scan_frequency`.
pub const MAX_DIRS_PER_GLOB: usize = 1_000;

/// One selector to expand, with what its source adds.
pub struct Input<'a> {
    pub selector: &'a Selector,
    /// For sources from etcd: the allowlist every matched file must pass.
    pub allowed: Option<&'a Allowlist>,
    /// The selector was expanded before: a file it finds now that no tail has is new since then.
    pub scanned_before: bool,
}

/// What applies to a whole scan.
pub struct Rules<'a> {
    /// Files not modified for this long are left out unless a tail has them.
    pub ignore_older: Option<Duration>,
    /// The agent's own log file: never matched by a glob.
    pub own_log: Option<&'a Path>,
    pub now: SystemTime,
    /// The top-level `format`, for selectors with none of their own.
    pub format: Format,
    /// Stop walking globs once the scan has taken this long (`Found::cut`): an etcd value whose
    /// globs take longer to expand is refused. None: every glob is walked (each walk is bounded
    /// by `globwalk`'s own caps).
    pub walk_limit: Option<Duration>,
}

/// What a scan found.
#[derive(Debug, Default, PartialEq)]
pub struct Found {
    pub tails: BTreeSet<TailSpec>,
    /// Of `tails`: files that appeared after their glob was first scanned; they are read from
    /// their first byte whatever `start_position` says (nothing written to them is skipped).
    pub appeared: BTreeSet<TailSpec>,
    /// Files left out because they were not modified for `ignore_older`.
    pub old: Vec<TailSpec>,
    /// Problems worth a log line, each naming the pattern or the file.
    pub problems: Vec<String>,
    /// The directories the globs' walks listed (where a new name can make a match): the file
    /// server watches them.
    pub dirs: BTreeSet<PathBuf>,
    /// `Rules::walk_limit` was reached: some globs were not walked (what was found is partial).
    pub cut: bool,
    /// Directories the walks could not list: a running tail of a file in one is kept, not
    /// retired (the agent runs on what it last knew, and a directory shut for a while loses
    /// nothing).
    pub unlisted: BTreeSet<PathBuf>,
}

/// Expands every input. `running` tells whether a tail has the file already (such a file is
/// never left out for its age).
pub fn expand<'a>(
    inputs: impl IntoIterator<Item = Input<'a>>,
    running: impl Fn(&TailSpec) -> bool,
    rules: &Rules,
) -> Found {
    let mut found = Found::default();
    // (path, topic) of each tail found: the first selector to find a file decides its format.
    let mut seen: std::collections::HashSet<(std::ffi::OsString, String)> = std::collections::HashSet::new();
    let mut walks = Walks { done: Default::default(), started: std::time::Instant::now() };
    for input in inputs {
        let sel = input.selector;
        for path in walks.paths(sel, rules, &mut found) {
            let mut spec = TailSpec::new(path, &sel.topic).with_format(sel.format.unwrap_or(rules.format));
            spec.multiline = sel.multiline.clone();
            spec.access = sel.access.clone();
            spec.handling = sel.handling.clone();
            if found.tails.contains(&spec) {
                continue;
            }
            if !seen.insert((spec.path.as_os_str().to_owned(), spec.topic.clone())) {
                found.problems.push(format!(
                    "{}: to topic {} in two ways (format, multiline, follow_symlinks, filters, fields or rate_limit); {} \
                     asks for {}, the first found wins",
                    spec.path.display(),
                    spec.topic,
                    sel.pattern.display(),
                    spec.format
                ));
                continue;
            }
            if sel.is_glob() {
                if let Some(Err(why)) = input.allowed.map(|a| a.check(&spec.path)) {
                    found.problems.push(format!(
                        "{}: matched by {}, {why}",
                        spec.path.display(),
                        sel.pattern.display()
                    ));
                    continue;
                }
            }
            if let Some(limit) = rules.ignore_older {
                if !running(&spec) && older_than(&spec.path, limit, rules.now) {
                    found.old.push(spec);
                    continue;
                }
            }
            if sel.is_glob() && input.scanned_before && !running(&spec) {
                found.appeared.insert(spec.clone());
            }
            found.tails.insert(spec);
        }
    }
    // A file found by one selector as new and by another as old news is not new.
    found.old.retain(|s| !found.tails.contains(s));
    found
}

/// The walks of one scan: one per pattern and access, however many selectors name it (one etcd
/// value may name the same glob to 10,000 topics).
struct Walks {
    done: std::collections::HashMap<(PathBuf, Access), crate::globwalk::Walk>,
    started: std::time::Instant,
}

impl Walks {
    /// The paths `sel` names now: a literal path as it is, a glob's matches (none once the scan
    /// has walked for `rules.walk_limit`: `found.cut`).
    fn paths(&mut self, sel: &Selector, rules: &Rules, found: &mut Found) -> Vec<PathBuf> {
        if !sel.is_glob() {
            return vec![sel.pattern.clone()];
        }
        if let Some(limit) = rules.walk_limit.filter(|limit| self.started.elapsed() > *limit) {
            found.cut = true;
            found.problems.push(format!("{}: not walked, the scan took longer than {limit:?}", sel.pattern.display()));
            return Vec::new();
        }
        let walk = self
            .done
            .entry((sel.pattern.clone(), sel.access.clone()))
            .or_insert_with(|| crate::globwalk::walk(&sel.pattern, &sel.access));
        matches(sel, walk, rules.own_log, found)
    }
}

/// The regular files a glob selector matches now, sorted; excluded and compressed files and the
/// agent's own log left out.
/// One walk gives both: the directories it listed go to `found.dirs`.
fn matches(sel: &Selector, walk: &crate::globwalk::Walk, own_log: Option<&Path>, found: &mut Found) -> Vec<PathBuf> {
    let problems = &mut found.problems;
    problems.extend(walk.problems.iter().cloned());
    found.dirs.extend(capped(walk.dirs.clone(), &sel.pattern, problems));
    found.unlisted.extend(walk.unlisted.iter().cloned());
    let mut out = Vec::new();
    for path in walk.files.iter().cloned() {
        if compressed(&path) || excluded(sel, &path) {
            continue;
        }
        if Some(path.as_path()) == own_log {
            problems.push(format!(
                "{}: matched by {} but it is the agent's own log; left out",
                path.display(),
                sel.pattern.display()
            ));
            continue;
        }
        if out.len() == MAX_FILES_PER_GLOB {
            problems.push(format!(
                "{}: more than {MAX_FILES_PER_GLOB} files match; the rest are left out",
                sel.pattern.display()
            ));
            break;
        }
        out.push(path);
    }
    out
}

/// At most `MAX_DIRS_PER_GLOB` of a glob's directories to watch, with a problem naming the
/// pattern when some are left out.
fn capped(mut dirs: BTreeSet<PathBuf>, pattern: &Path, problems: &mut Vec<String>) -> BTreeSet<PathBuf> {
    if dirs.len() > MAX_DIRS_PER_GLOB {
        problems.push(format!(
            "{}: more than {MAX_DIRS_PER_GLOB} directories to watch; files new in the rest are found every \
             scan_frequency",
            pattern.display()
        ));
        dirs = dirs.into_iter().take(MAX_DIRS_PER_GLOB).collect();
    }
    dirs
}

/// Whether one of the selector's exclude patterns matches `path` (a pattern with a `/` the whole
/// path, one without the file name).
pub fn excluded(sel: &Selector, path: &Path) -> bool {
    let name = path.file_name().map(Path::new).unwrap_or(path);
    sel.exclude.iter().any(|ex| {
        let Ok(p) = Pattern::new(ex) else { return false };
        if ex.contains('/') {
            p.matches_path_with(path, MATCH)
        } else {
            p.matches_path_with(name, MATCH)
        }
    })
}

/// Whether the glob selector `sel` names `path` (whether or not the file exists now).
pub fn covers(sel: &Selector, path: &Path) -> bool {
    sel.is_glob()
        && Pattern::new(&sel.pattern.to_string_lossy()).is_ok_and(|p| p.matches_path_with(path, MATCH))
        && !excluded(sel, path)
        && !compressed(path)
}

/// Rotated copies that are compressed are not logs to ship.
pub fn compressed(path: &Path) -> bool {
    let name = path.to_string_lossy();
    [".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"].iter().any(|ext| name.ends_with(ext))
}

fn older_than(path: &Path, limit: Duration, now: SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|mtime| now.duration_since(mtime).is_ok_and(|age| age > limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(pattern: &Path, exclude: &[&str]) -> Selector {
        Selector {
            pattern: pattern.to_path_buf(),
            topic: "t".into(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            format: None,
            multiline: None,
            handling: Default::default(),
            access: Access::Follow,
        }
    }
    fn rules(ignore_older: Option<Duration>) -> Rules<'static> {
        Rules { ignore_older, own_log: None, now: SystemTime::now(), format: Format::Raw, walk_limit: None }
    }
    fn input(s: &Selector) -> Input<'_> {
        Input { selector: s, allowed: None, scanned_before: false }
    }
    fn names(found: &BTreeSet<TailSpec>) -> Vec<String> {
        found.iter().map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned()).collect()
    }

    /// The directories whose name events can change what `pattern` matches, sorted: the one where its
    /// wildcards begin and every existing directory the pattern's directory part passes through
    /// below it (those the walk lists). For `/var/log/*/app.log`: `/var/log` (a new service
    /// directory) and each `/var/log/X` (a new `app.log` in it); a `**` takes every directory under
    /// it. At most `MAX_DIRS_PER_GLOB`, with a problem naming the pattern when some are left out.
    fn watch_dirs(pattern: &Path, access: &Access, problems: &mut Vec<String>) -> BTreeSet<PathBuf> {
        capped(crate::globwalk::walk(pattern, access).dirs, pattern, problems)
    }

    #[test]
    fn watch_dirs_are_where_a_new_name_can_make_a_match() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for sub in ["a", "b", "b/deep", "c.d"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("file"), b"").unwrap();
        let rel = |set: BTreeSet<PathBuf>| -> Vec<String> {
            set.iter().map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned()).collect()
        };
        let mut problems = Vec::new();
        assert_eq!(
            rel(watch_dirs(&root.join("*.log"), &Access::Follow, &mut problems)),
            [""],
            "the file name part adds none"
        );
        assert_eq!(rel(watch_dirs(&root.join("*/app.log"), &Access::Follow, &mut problems)), ["", "a", "b", "c.d"]);
        assert_eq!(
            rel(watch_dirs(&root.join("b/*/x/*.log"), &Access::Follow, &mut problems)),
            ["b", "b/deep"],
            "x does not exist"
        );
        assert_eq!(
            rel(watch_dirs(&root.join("**/*.log"), &Access::Follow, &mut problems)),
            ["", "a", "b", "b/deep", "c.d"]
        );
        assert_eq!(rel(watch_dirs(&root.join("[ab]/*.log"), &Access::Follow, &mut problems)), ["", "a", "b"]);
        assert!(problems.is_empty(), "{problems:?}");
        for i in 0..MAX_DIRS_PER_GLOB {
            std::fs::create_dir(root.join(format!("a/{i}"))).unwrap();
        }
        assert_eq!(watch_dirs(&root.join("a/*/*.log"), &Access::Follow, &mut problems).len(), MAX_DIRS_PER_GLOB);
        assert!(problems[0].contains("more than 1000 directories"), "{problems:?}");
    }

    #[test]
    fn glob_excludes_directories_and_compressed_files() {
        let d = tempfile::tempdir().unwrap();
        for f in ["a.log", "b.log", "c.txt", "debug.log", "old.log.gz", ".hidden.log"] {
            std::fs::write(d.path().join(f), b"x\n").unwrap();
        }
        std::fs::create_dir(d.path().join("dir.log")).unwrap();
        let s = sel(&d.path().join("*.log*"), &["debug.*"]);
        let f = expand([input(&s)], |_| false, &rules(None));
        assert_eq!(names(&f.tails), vec![".hidden.log", "a.log", "b.log"]);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        // An exclude with a slash is matched against the whole path.
        let s = sel(&d.path().join("*.log"), &[&format!("{}/a.*", d.path().display())]);
        assert_eq!(
            names(&expand([input(&s)], |_| false, &rules(None)).tails),
            vec![".hidden.log", "b.log", "debug.log"]
        );
    }

    #[test]
    fn a_glob_never_names_the_agents_own_log() {
        let d = tempfile::tempdir().unwrap();
        let (app, own) = (d.path().join("app.log"), d.path().join("agent.log"));
        std::fs::write(&app, b"").unwrap();
        std::fs::write(&own, b"").unwrap();
        let s = sel(&d.path().join("*.log"), &[]);
        let f = expand([input(&s)], |_| false, &Rules { own_log: Some(&own), ..rules(None) });
        assert_eq!(names(&f.tails), vec!["app.log"]);
        assert!(f.problems[0].contains("own log"), "{:?}", f.problems);
        let literal = Selector::file(own.clone(), "t");
        let f = expand([input(&literal)], |_| false, &Rules { own_log: Some(&own), ..rules(None) });
        assert_eq!(f.tails.len(), 1, "a literal path may name it");
    }

    #[test]
    fn double_star_crosses_directories_and_literal_paths_always_count() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("x/y")).unwrap();
        std::fs::write(d.path().join("top.log"), b"").unwrap();
        std::fs::write(d.path().join("x/y/deep.log"), b"").unwrap();
        let s = sel(&d.path().join("**/*.log"), &[]);
        assert_eq!(names(&expand([input(&s)], |_| false, &rules(None)).tails), vec!["top.log", "deep.log"]);
        let missing = Selector::file(d.path().join("not-yet.log"), "t");
        assert_eq!(expand([input(&missing)], |_| false, &rules(None)).tails.len(), 1);
    }

    #[test]
    fn ignore_older_skips_quiet_files_unless_running() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.log"), b"").unwrap();
        let s = sel(&d.path().join("*.log"), &[]);
        let later =
            Rules { now: SystemTime::now() + Duration::from_secs(3600), ..rules(Some(Duration::from_secs(60))) };
        let f = expand([input(&s)], |_| false, &later);
        assert!(f.tails.is_empty());
        assert_eq!(names(&f.old.iter().cloned().collect()), vec!["a.log"]);
        let f = expand([input(&s)], |_| true, &later);
        assert_eq!(names(&f.tails), vec!["a.log"], "a running tail is kept");
    }

    #[test]
    fn files_found_on_a_later_scan_have_appeared() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.log"), b"").unwrap();
        let s = sel(&d.path().join("*.log"), &[]);
        let again = Input { selector: &s, allowed: None, scanned_before: true };
        let f = expand([again], |_| false, &rules(None));
        assert_eq!(names(&f.appeared), vec!["a.log"]);
    }

    #[test]
    fn allowlist_applies_to_every_match() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("logs")).unwrap();
        std::fs::create_dir(root.join("secret")).unwrap();
        std::fs::write(root.join("secret/key"), b"").unwrap();
        std::fs::write(root.join("logs/ok.log"), b"").unwrap();
        std::os::unix::fs::symlink(root.join("secret/key"), root.join("logs/leak.log")).unwrap();
        std::fs::write(root.join("logs/auth.log"), b"").unwrap();
        let allowed = Allowlist {
            allowed: vec![root.join("logs").to_string_lossy().into_owned()],
            denied: vec![root.join("logs/auth.log*").to_string_lossy().into_owned()],
        };
        let s = Selector { access: allowed.check(&root.join("logs")).unwrap(), ..sel(&root.join("logs/*.log"), &[]) };
        let f =
            expand([Input { selector: &s, allowed: Some(&allowed), scanned_before: false }], |_| false, &rules(None));
        assert_eq!(names(&f.tails), vec!["ok.log"]);
        let problems = f.problems.join("\n");
        assert!(problems.contains("leak.log") && problems.contains("symlink"), "{problems}");
        assert!(problems.contains("auth.log") && problems.contains("etcd_denied_paths"), "{problems}");
    }

    #[test]
    fn a_scan_past_its_walk_limit_walks_no_more_globs_and_says_so() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.log"), b"").unwrap();
        let glob = sel(&d.path().join("*.log"), &[]);
        let literal = Selector::file(d.path().join("b.log"), "t");
        let f = expand(
            [input(&literal), input(&glob)],
            |_| false,
            &Rules { walk_limit: Some(Duration::ZERO), ..rules(None) },
        );
        assert!(f.cut && f.problems.iter().any(|p| p.contains("not walked")), "{:?}", f.problems);
        assert_eq!(names(&f.tails), vec!["b.log"], "literal paths need no walk");
        let f = expand([input(&glob)], |_| false, &rules(None));
        assert!(!f.cut && names(&f.tails) == vec!["a.log"]);
    }

    #[test]
    fn covers_and_bad_patterns() {
        let s = sel(Path::new("/l/*.log*"), &["*.bak"]);
        assert!(covers(&s, Path::new("/l/a.log.1")));
        assert!(!covers(&s, Path::new("/l/a.log.bak")));
        assert!(!covers(&s, Path::new("/l/sub/a.log")));
        assert!(!covers(&Selector::file("/l/a.log".into(), "t"), Path::new("/l/a.log")), "literal paths are not globs");
        assert!(crate::selector::check_pattern("/l/[a-.log").is_err());
        assert!(crate::selector::check_pattern("/l/**/*.log").is_ok());
    }
}
