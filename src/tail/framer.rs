//! The line framer: where the next line of a tail's read buffer lies (`frame`; `frame_wide` for
//! UTF-16 files, whose newline is two bytes).
//!
//! Exists as a pure function so the rules a reader of the agent relies on are checked by
//! property tests rather than end-to-end runs: every byte of a line is shipped, in order; no
//! piece is longer than `max_line_bytes`; a line longer than that is cut into pieces of exactly
//! `max` bytes (the last shorter); `\n` ends a line and a `\r` before it is dropped; an empty
//! piece is shipped only for an empty line; and the result does not depend on how the bytes
//! arrived (in one read or many).

/// What the buffer holds from `pos` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed {
    /// A line or a piece of one: `buf[pos..end]`. The next one starts at `next`. `split`: cut at
    /// `max` bytes, the line goes on in the next piece.
    Line { end: usize, next: usize, split: bool },
    /// No complete line yet: no newline before the end of the buffer, and at most `max` bytes.
    Incomplete,
}

/// Frames the line starting at `pos`. `scanned` (at least `pos`) says how far the buffer is
/// known to hold no newline, so bytes are searched once however often the frame is asked for.
pub fn frame(buf: &[u8], pos: usize, scanned: usize, max: usize) -> Framed {
    debug_assert!(pos <= scanned && scanned <= buf.len() && max > 0);
    let newline = memchr::memchr(b'\n', &buf[scanned..]).map(|i| scanned + i);
    // The content of the line, without its `\r\n` or `\n`, decides whether it fits.
    let content = match newline {
        Some(nl) if nl > pos && buf[nl - 1] == b'\r' => nl - 1 - pos,
        Some(nl) => nl - pos,
        // No newline yet: a `\r` at the end may begin a `\r\n`, so it does not count until the
        // next byte is read (counted, it made the pieces depend on how the bytes arrived).
        None => buf.len() - pos - usize::from(buf[pos..].last() == Some(&b'\r')),
    };
    match newline {
        Some(nl) if content <= max => Framed::Line { end: pos + content, next: nl + 1, split: false },
        _ if content > max => Framed::Line { end: pos + max, next: pos + max, split: true },
        _ => Framed::Incomplete,
    }
}

/// `frame` for UTF-16 (`encoding: utf-16le`, `utf-16be`): a line ends with the two-byte
/// newline `\n\0` (little-endian) or `\0\n` (big-endian) at a code unit boundary (an even
/// distance from `pos`, where a line always begins), a `\r` unit before it is dropped, and a
/// piece cut at `max` is cut at a unit boundary too. The same rules as `frame` otherwise.
pub fn frame_wide(buf: &[u8], pos: usize, scanned: usize, max: usize, big_endian: bool) -> Framed {
    debug_assert!(pos <= scanned && scanned <= buf.len() && max > 0);
    let max = (max & !1).max(2);
    let unit = |at: usize| -> [u8; 2] { [buf[at], buf[at + 1]] };
    let (nl, cr) = if big_endian { ([0, b'\n'], [0, b'\r']) } else { ([b'\n', 0], [b'\r', 0]) };
    // The first unit not known to hold no newline.
    let mut at = pos + ((scanned - pos) & !1);
    let newline = loop {
        // The newline's `\n` byte, then whether it is at the right place in its unit.
        let Some(found) = memchr::memchr(b'\n', &buf[at..]).map(|i| at + i) else { break None };
        let start = found - ((found - pos) & 1);
        if start + 2 <= buf.len() && unit(start) == nl {
            break Some(start);
        }
        at = start + 2;
        if at >= buf.len() {
            break None;
        }
    };
    let units_end = pos + ((buf.len() - pos) & !1);
    let content = match newline {
        Some(n) if n >= pos + 2 && unit(n - 2) == cr => n - 2 - pos,
        Some(n) => n - pos,
        None if units_end >= pos + 2 && unit(units_end - 2) == cr => units_end - 2 - pos,
        None => units_end - pos,
    };
    match newline {
        Some(n) if content <= max => Framed::Line { end: pos + content, next: n + 2, split: false },
        _ if content > max => Framed::Line { end: pos + max, next: pos + max, split: true },
        _ => Framed::Incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Frames `input` arriving in `chunks` (sizes), as a tail reads it: pieces as (bytes, split).
    fn frame_all(input: &[u8], chunks: &[usize], max: usize) -> Vec<(Vec<u8>, bool)> {
        frame_all_with(input, chunks, |buf, pos, scanned| frame(buf, pos, scanned, max))
    }

    /// `frame_all` with any framer.
    fn frame_all_with(
        input: &[u8],
        chunks: &[usize],
        frame: impl Fn(&[u8], usize, usize) -> Framed,
    ) -> Vec<(Vec<u8>, bool)> {
        let (mut buf, mut fed, mut pos, mut scanned, mut out) = (Vec::new(), 0, 0, 0, Vec::new());
        let mut sizes = chunks.iter().copied().chain(std::iter::repeat(usize::MAX));
        while fed < input.len() {
            let n = sizes.next().unwrap().max(1).min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + n]);
            fed += n;
            loop {
                match frame(&buf, pos, scanned) {
                    Framed::Line { end, next, split } => {
                        out.push((buf[pos..end].to_vec(), split));
                        pos = next;
                        scanned = scanned.max(pos);
                    }
                    Framed::Incomplete => {
                        scanned = buf.len();
                        break;
                    }
                }
            }
        }
        out
    }

    fn line_text() -> impl Strategy<Value = Vec<u8>> {
        // Lines of bytes other than `\n`, `\r` likely inside and at the end.
        proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'a'), any::<u8>().prop_filter("no newline", |b| *b != b'\n')],
            0..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn pieces_rebuild_each_line_none_over_max_none_empty_whatever_the_reads(
            lines in proptest::collection::vec((line_text(), any::<bool>()), 0..20),
            chunks in proptest::collection::vec(1usize..30, 0..40),
            max in 1usize..25,
        ) {
            let mut input = Vec::new();
            for (l, crlf) in &lines {
                input.extend_from_slice(l);
                input.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
            let pieces = frame_all(&input, &chunks, max);
            // Group pieces into lines: a piece that is not split ends its line.
            let mut rebuilt: Vec<Vec<u8>> = vec![Vec::new()];
            for (p, split) in &pieces {
                prop_assert!(p.len() <= max, "a piece of {} bytes, max {}", p.len(), max);
                prop_assert!(!split || p.len() == max, "a split piece is exactly max bytes");
                if p.is_empty() {
                    prop_assert!(!split && rebuilt.last().unwrap().is_empty(), "an empty piece is a whole, empty line");
                }
                rebuilt.last_mut().unwrap().extend_from_slice(p);
                if !split {
                    rebuilt.push(Vec::new());
                }
            }
            prop_assert!(rebuilt.pop().unwrap().is_empty(), "the input ends with a newline: nothing left open");
            // A `\r\n` ending loses its `\r`; a line written as "x\r" + "\n" ends in `\r\n` too.
            let want: Vec<Vec<u8>> = lines
                .iter()
                .map(|(l, crlf)| {
                    let mut w = l.clone();
                    if !*crlf && w.last() == Some(&b'\r') {
                        w.pop(); // "x\r" + "\n" is a \r\n ending too
                    }
                    w
                })
                .collect();
            prop_assert_eq!(&rebuilt, &want);
            // The same pieces whatever the reads were.
            prop_assert_eq!(pieces, frame_all(&input, &[usize::MAX], max));
        }
    }

    /// UTF-16 lines: code units other than `\n`, with `\r` and units holding a 0x0A byte in
    /// either half (U+0A41, U+410A: a framer that searched bytes unaligned would cut there).
    fn wide_line() -> impl Strategy<Value = Vec<u16>> {
        proptest::collection::vec(
            prop_oneof![
                Just(0x0du16),
                Just(0x0a41),
                Just(0x410a),
                Just(0x61),
                any::<u16>().prop_filter("no newline", |u| *u != 0x0a)
            ],
            0..30,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn utf16_pieces_rebuild_each_line_at_unit_boundaries_whatever_the_reads(
            lines in proptest::collection::vec((wide_line(), any::<bool>()), 0..15),
            chunks in proptest::collection::vec(1usize..30, 0..40),
            max in 1usize..25,
            big_endian in any::<bool>(),
        ) {
            let bytes = |units: &[u16]| -> Vec<u8> {
                units.iter().flat_map(|u| if big_endian { u.to_be_bytes() } else { u.to_le_bytes() }).collect()
            };
            let mut input = Vec::new();
            for (l, crlf) in &lines {
                input.extend(bytes(l));
                input.extend(bytes(if *crlf { &[0x0d, 0x0a] } else { &[0x0a] }));
            }
            let pieces = frame_all_with(&input, &chunks, |b, p, s| frame_wide(b, p, s, max, big_endian));
            let max = (max & !1).max(2);
            let mut rebuilt: Vec<Vec<u8>> = vec![Vec::new()];
            for (p, split) in &pieces {
                prop_assert!(p.len() <= max && p.len() % 2 == 0, "a piece of {} bytes, max {}", p.len(), max);
                prop_assert!(!split || p.len() == max);
                rebuilt.last_mut().unwrap().extend_from_slice(p);
                if !split {
                    rebuilt.push(Vec::new());
                }
            }
            prop_assert!(rebuilt.pop().unwrap().is_empty());
            let want: Vec<Vec<u8>> = lines
                .iter()
                .map(|(l, crlf)| {
                    let mut w = l.clone();
                    if !*crlf && w.last() == Some(&0x0d) {
                        w.pop();
                    }
                    bytes(&w)
                })
                .collect();
            prop_assert_eq!(&rebuilt, &want);
            prop_assert_eq!(pieces, frame_all_with(&input, &[usize::MAX], |b, p, s| frame_wide(b, p, s, max, big_endian)));
        }
    }

    #[test]
    fn a_line_of_exactly_max_bytes_with_crlf_is_one_message() {
        // Before the framer was a function of its own, the `\r` counted toward the limit: this
        // line was cut at max, then an empty message followed.
        let buf = b"abcd\r\nef\n";
        assert_eq!(frame(buf, 0, 0, 4), Framed::Line { end: 4, next: 6, split: false });
        assert_eq!(frame(buf, 6, 6, 4), Framed::Line { end: 8, next: 9, split: false });
        assert_eq!(frame(buf, 9, 9, 4), Framed::Incomplete);
    }

    #[test]
    fn a_trailing_cr_waits_for_the_next_byte_so_reads_do_not_matter() {
        // Found by the property test: with max 1, "\r\r" + "\r\n" read as "\r\r\r" then "\n"
        // gave "\r", "\r", "" (an empty message); read at once, "\r", "\r".
        let whole = frame_all(b"\r\r\r\n", &[usize::MAX], 1);
        assert_eq!(whole, vec![(b"\r".to_vec(), true), (b"\r".to_vec(), false)]);
        assert_eq!(frame_all(b"\r\r\r\n", &[3, 1], 1), whole);
    }

    #[test]
    fn an_unfinished_line_waits_until_it_is_over_max() {
        assert_eq!(frame(b"abcd", 0, 0, 4), Framed::Incomplete);
        assert_eq!(frame(b"abcd\r", 0, 0, 4), Framed::Incomplete, "the \\r may begin a \\r\\n");
        assert_eq!(frame(b"abcde", 0, 0, 4), Framed::Line { end: 4, next: 4, split: true });
        assert_eq!(frame(b"abcdefgh\n", 0, 0, 4), Framed::Line { end: 4, next: 4, split: true });
    }
}
