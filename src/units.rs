//! Durations and sizes as config.yaml and etcd values write them (`500ms`, `64KiB`).
//!
//! Exists apart from `config` because a source's own settings (`multiline`) parse them too, and
//! `config` depends on those modules, not the other way round. Both the parsers and the shapes
//! YAML and JSON give them (a number, or text with a unit) live here.

use std::time::Duration;

use serde::Deserialize;

/// Parses `500ms`, `10s`, `5m`, `24h`, `2d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO); // `batch_wait: 0`: zero needs no unit
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a duration such as 500ms, 10s, 5m, 24h"))?;
    let ms = match unit.trim() {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        _ => return Err(format!("{text:?} is not a duration such as 500ms, 10s, 5m, 24h")),
    };
    Ok(Duration::from_millis(ms))
}

/// Parses `4096`, `64KiB`, `1MiB`, `1GiB` (also `KB`/`MB`/`GB`, as powers of 1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a size such as 4096, 64KiB, 1MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("{text:?} is not a size such as 4096, 64KiB, 1MiB")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{text:?} is too large"))
}

/// A duration key as written: a string with a unit, or the bare number 0 (which YAML reads as
/// an integer: `batch_wait: 0` was refused as "invalid type").
pub fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|r| match r {
        Raw::Number(n) => n.to_string(),
        Raw::Text(t) => t,
    }))
}

/// A size written as a number of bytes or as a string with a unit (`64KiB`, `1MiB`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(u64),
    Text(String),
}

/// The bytes of a `RawSize`.
pub fn parse_size_raw(raw: &RawSize) -> Result<u64, String> {
    match raw {
        RawSize::Bytes(n) => Ok(*n),
        RawSize::Text(t) => parse_size(t),
    }
}
