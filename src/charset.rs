//! `encoding` (issue 28): files written in another character set, shipped as UTF-8.
//!
//! Exists because old applications write Latin-1, Windows-1252, Shift-JIS, GBK or UTF-16 (SQL
//! Server's ERRORLOG), and a consumer of a topic expects one charset. Lines are framed in the
//! file's own bytes (UTF-16 on its own two-byte newline: `tail::framer::frame_wide`), and each
//! line, once framed, is decoded here: offsets and checkpoints stay in the file's bytes, only
//! messages are UTF-8. `utf-8` (the default) ships the bytes as they are, as before; a sequence
//! a charset cannot decode becomes U+FFFD (counted by the caller). A byte order mark at the
//! start of a file is not part of its first line.
//!
//! Latin-1 is decoded here (each byte is the code point of the same number); the others are
//! encoding_rs's (the WHATWG Encoding Standard's decoders, Firefox's), which maps the label
//! "latin1" to Windows-1252: the two differ in 0x80-0x9F, which Latin-1 gives to C1 controls.

use encoding_rs::Encoding;

/// A file's character set (`encoding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Charset {
    /// The bytes as they are (UTF-8, or whatever the file holds).
    #[default]
    Utf8,
    Latin1,
    Windows1252,
    ShiftJis,
    Gbk,
    Utf16Le,
    Utf16Be,
}

/// The names `encoding` accepts, each with its charset.
const NAMES: [(&str, Charset); 7] = [
    ("utf-8", Charset::Utf8),
    ("latin1", Charset::Latin1),
    ("windows-1252", Charset::Windows1252),
    ("shift_jis", Charset::ShiftJis),
    ("gbk", Charset::Gbk),
    ("utf-16le", Charset::Utf16Le),
    ("utf-16be", Charset::Utf16Be),
];

impl Charset {
    /// One of `NAMES` (case and `-`/`_` as written there, or `iso-8859-1` for Latin-1, `utf8`).
    pub fn parse(text: &str) -> Result<Charset, String> {
        let folded = text.to_ascii_lowercase().replace('_', "-");
        let found = NAMES.iter().find(|(n, _)| n.replace('_', "-") == folded).map(|(_, c)| *c);
        found
            .or(match folded.as_str() {
                "utf8" => Some(Charset::Utf8),
                "iso-8859-1" | "latin-1" => Some(Charset::Latin1),
                "cp1252" => Some(Charset::Windows1252),
                "sjis" | "cp932" => Some(Charset::ShiftJis),
                _ => None,
            })
            .ok_or_else(|| {
                let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
                format!("{text:?} is not one of {}", names.join(", "))
            })
    }

    /// UTF-16: lines end with a two-byte newline, framed by `frame_wide`.
    pub fn wide(self) -> Option<BigEndian> {
        match self {
            Charset::Utf16Le => Some(false),
            Charset::Utf16Be => Some(true),
            _ => None,
        }
    }

    /// Whether lines are shipped as the file's bytes.
    pub fn is_passthrough(self) -> bool {
        self == Charset::Utf8
    }

    fn encoding(self) -> Option<&'static Encoding> {
        match self {
            Charset::Utf8 | Charset::Latin1 => None,
            Charset::Windows1252 => Some(encoding_rs::WINDOWS_1252),
            Charset::ShiftJis => Some(encoding_rs::SHIFT_JIS),
            Charset::Gbk => Some(encoding_rs::GBK),
            Charset::Utf16Le => Some(encoding_rs::UTF_16LE),
            Charset::Utf16Be => Some(encoding_rs::UTF_16BE),
        }
    }

    /// Appends `line` decoded to UTF-8 to `out`; `at_start`: the line begins the file (a byte
    /// order mark there is dropped). Whether a sequence had to be replaced by U+FFFD.
    pub fn decode_into(self, line: &[u8], at_start: bool, out: &mut Vec<u8>) -> bool {
        let from = out.len();
        let replaced = match self.encoding() {
            None if self == Charset::Latin1 => {
                latin1(line, out);
                false
            }
            None => {
                out.extend_from_slice(line);
                false
            }
            Some(enc) => {
                let (text, had_errors) = enc.decode_without_bom_handling(line);
                out.extend_from_slice(text.as_bytes());
                had_errors
            }
        };
        if at_start && out[from..].starts_with("\u{feff}".as_bytes()) {
            out.drain(from..from + 3);
        }
        replaced
    }
}

/// `true` for UTF-16BE, `false` for UTF-16LE.
pub type BigEndian = bool;

/// Latin-1 to UTF-8: ASCII runs copied at once, every other byte as its two-byte sequence.
fn latin1(line: &[u8], out: &mut Vec<u8>) {
    out.reserve(line.len() + line.len() / 8);
    let mut rest = line;
    while !rest.is_empty() {
        let ascii = rest.iter().position(|&b| b >= 0x80).unwrap_or(rest.len());
        out.extend_from_slice(&rest[..ascii]);
        rest = &rest[ascii..];
        while let Some((&b, tail)) = rest.split_first().filter(|(&b, _)| b >= 0x80) {
            out.extend_from_slice(&[0xC0 | (b >> 6), 0x80 | (b & 0x3F)]);
            rest = tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(c: Charset, bytes: &[u8], at_start: bool) -> String {
        let mut out = b"kept ".to_vec();
        c.decode_into(bytes, at_start, &mut out);
        String::from_utf8(out).expect("UTF-8 out").strip_prefix("kept ").unwrap().to_string()
    }

    #[test]
    fn each_charset_decodes_to_utf8() {
        assert_eq!(decode(Charset::Latin1, b"caf\xe9 \x80 ok", false), "caf\u{e9} \u{80} ok");
        assert_eq!(decode(Charset::Windows1252, b"caf\xe9 \x80 ok", false), "caf\u{e9} \u{20ac} ok");
        assert_eq!(decode(Charset::ShiftJis, b"\x93\xfa\x96\x7b ERROR", false), "\u{65e5}\u{672c} ERROR");
        assert_eq!(decode(Charset::Gbk, b"\xd6\xd0\xce\xc4", false), "\u{4e2d}\u{6587}");
        assert_eq!(decode(Charset::Utf16Le, b"A\x00\xe9\x00", false), "A\u{e9}");
        assert_eq!(decode(Charset::Utf16Be, b"\x00A\x00\xe9", false), "A\u{e9}");
        let mut out = Vec::new();
        assert!(!Charset::Utf8.decode_into(b"as \xff is", true, &mut out));
        assert_eq!(out, b"as \xff is", "utf-8: the bytes as they are");
    }

    #[test]
    fn a_bom_is_dropped_at_the_start_of_a_file_only() {
        assert_eq!(decode(Charset::Utf16Le, b"\xff\xfeA\x00", true), "A");
        assert_eq!(decode(Charset::Utf16Be, b"\xfe\xff\x00A", true), "A");
        assert_eq!(decode(Charset::Utf16Le, b"\xff\xfeA\x00", false), "\u{feff}A");
    }

    #[test]
    fn undecodable_bytes_are_replaced_and_said() {
        let mut out = Vec::new();
        assert!(Charset::ShiftJis.decode_into(b"\x81", false, &mut out));
        assert_eq!(String::from_utf8(out).unwrap(), "\u{fffd}");
    }

    #[test]
    fn names() {
        assert_eq!(Charset::parse("latin1"), Ok(Charset::Latin1));
        assert_eq!(Charset::parse("ISO-8859-1"), Ok(Charset::Latin1));
        assert_eq!(Charset::parse("Shift-JIS"), Ok(Charset::ShiftJis));
        assert_eq!(Charset::parse("UTF-16LE"), Ok(Charset::Utf16Le));
        let e = Charset::parse("ebcdic").unwrap_err();
        assert!(e.starts_with("\"ebcdic\" is not one of utf-8, latin1,"), "{e}");
    }
}
