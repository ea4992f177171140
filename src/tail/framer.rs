//! The line framer: where the next line of a tail's read buffer lies.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Frames `input` arriving in `chunks` (sizes), as a tail reads it: pieces as (bytes, split).
    fn frame_all(input: &[u8], chunks: &[usize], max: usize) -> Vec<(Vec<u8>, bool)> {
        let (mut buf, mut fed, mut pos, mut scanned, mut out) = (Vec::new(), 0, 0, 0, Vec::new());
        let mut sizes = chunks.iter().copied().chain(std::iter::repeat(usize::MAX));
        while fed < input.len() {
            let n = sizes.next().unwrap().max(1).min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + n]);
            fed += n;
            loop {
                match frame(&buf, pos, scanned, max) {
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
