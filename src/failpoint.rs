//! Test-only fail points: make a chosen worker panic at a chosen moment.
//!
//! Exists so that the supervisor's promise ("a thread that panics is restarted and nothing it was
//! shipping is lost") is tested against the real binary. Compiled in only with the cargo feature
//! `failpoints`; in a normal build `hit` is an empty inline function.
//!
//! `LOGCATCH_FAILPOINTS="NAME=MATCH@N,..."` panics the N-th time the fail point NAME is reached
//! with a detail that contains MATCH, once per process. Points: `tail.sent` (detail: the tail's
//! path, after a line was handed to the producer), `etcd.applied` (detail: the etcd key, after a
//! value was applied).

#[cfg(feature = "failpoints")]
mod imp {
    use std::sync::{Mutex, OnceLock};

    struct Point {
        name: String,
        needle: String,
        at: u64,
        seen: u64,
        fired: bool,
    }

    fn points() -> &'static Mutex<Vec<Point>> {
        static POINTS: OnceLock<Mutex<Vec<Point>>> = OnceLock::new();
        POINTS.get_or_init(|| Mutex::new(parse(&std::env::var("LOGCATCH_FAILPOINTS").unwrap_or_default())))
    }

    fn parse(spec: &str) -> Vec<Point> {
        spec.split(',')
            .filter_map(|item| {
                let (name, rest) = item.split_once('=')?;
                let (needle, at) = rest.rsplit_once('@').unwrap_or((rest, "1"));
                Some(Point {
                    name: name.trim().to_string(),
                    needle: needle.to_string(),
                    at: at.trim().parse().ok()?,
                    seen: 0,
                    fired: false,
                })
            })
            .collect()
    }

    pub fn hit(name: &str, detail: &str) {
        let fire = {
            let mut pts = points().lock().unwrap_or_else(|p| p.into_inner());
            let mut fire = false;
            for p in pts.iter_mut().filter(|p| !p.fired && p.name == name && detail.contains(&p.needle)) {
                p.seen += 1;
                if p.seen >= p.at {
                    p.fired = true;
                    fire = true;
                }
            }
            fire
        };
        if fire {
            log::warn!("fail point {name} fires for {detail}");
            panic!("fail point {name} ({detail})");
        }
    }
}

#[cfg(feature = "failpoints")]
pub use imp::hit;

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str, _detail: &str) {}
