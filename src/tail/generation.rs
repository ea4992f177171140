//! Rotated generations that logrotate compressed, read as the file they were.
//!
//! Exists because logrotate's `compress` turns a generation the agent has not finished (it was
//! down or killed, or the broker was away) into a new file, with a new inode and other bytes: by
//! identity and fingerprint it is a stranger, and its unread lines would be lost. Here a compressed
//! file is recognised by its first bytes (the codec's magic number, whatever its name ends with:
//! logrotate's `compressext` may be anything), fingerprinted by its *decompressed* first bytes,
//! and read as the stream of its decompressed bytes: offsets in it are offsets in the original,
//! so a position saved while the file was plain goes on in its compressed copy, and the position
//! store's rules (`Checkpoints::position`: known by identity, or a copy of content read under the
//! tail's path) apply unchanged.
//!
//! gzip (logrotate's default), bzip2, xz and zstd (`compresscmd bzip2`, `xz`, `zstd`) are read,
//! each through concatenated members (what `gzip`, `bzip2` and `xz` make of files appended to one
//! another); lz4 and zip are left as they are (not recognised: skipped like any file of another
//! format).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::fingerprint::{Fingerprint, Probe, Stamp, FP_BYTES};

/// The magic numbers `sniff_head` knows, whole: gzip's two bytes, xz's six, zstd's four, and
/// bzip2's ten ("BZh", the block size, then the first block's magic, or the end-of-stream one of
/// an empty stream), since a line of text may well begin with "BZh". `?` stands for a block size
/// digit, '1' to '9'.
const MAGICS: [(Codec, &[u8]); 5] = [
    (Codec::Gzip, &[0x1f, 0x8b]),
    (Codec::Bzip2, b"BZh?\x31\x41\x59\x26\x53\x59"),
    (Codec::Bzip2, b"BZh?\x17\x72\x45\x38\x50\x90"),
    (Codec::Xz, &[0xfd, b'7', b'z', b'X', b'Z', 0]),
    (Codec::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
];
/// The longest of `MAGICS`.
const SNIFF_BYTES: usize = 10;

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Compressed(Codec),
    /// Too short to tell: empty, or the start of a magic number.
    Unsure,
    Plain,
}

fn sniff_head(head: &[u8]) -> Sniffed {
    let fits =
        |m: &[u8]| m.iter().zip(head).all(|(&m, &b)| if m == b'?' { (b'1'..=b'9').contains(&b) } else { m == b });
    if let Some((codec, _)) = MAGICS.iter().find(|(_, m)| head.len() >= m.len() && fits(m)) {
        return Sniffed::Compressed(*codec);
    }
    if MAGICS.iter().any(|(_, m)| head.len() < m.len() && fits(m)) {
        return Sniffed::Unsure;
    }
    Sniffed::Plain
}

/// The first `SNIFF_BYTES` of `file` (fewer when it is shorter); one `pread`.
fn head_of(file: &File) -> Option<([u8; SNIFF_BYTES], usize)> {
    let mut head = [0u8; SNIFF_BYTES];
    let n = file.read_at(&mut head, 0).ok()?;
    Some((head, n))
}

/// A compression logrotate may have applied, known by the first bytes of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
            Codec::Zstd => "zstd",
        }
    }

    /// A stream of the decompressed bytes of `file`, from its start.
    fn stream(self, file: Arc<File>) -> io::Result<Box<dyn Read + Send>> {
        let raw = Positional { file, at: 0 };
        Ok(match self {
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
            Codec::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(raw)),
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
        })
    }
}

/// Reads a file from its start with `pread`, so that a descriptor shared with others (`dup`)
/// keeps no offset anyone else moves.
struct Positional {
    file: Arc<File>,
    at: u64,
}

impl Read for Positional {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// The decompressed bytes of a compressed file, read forward from any offset: reading at an
/// offset behind the stream starts it again and skips (a compressed stream cannot seek).
pub struct Decoded {
    codec: Codec,
    /// Its own descriptor (`dup`), shared with the stream: a stream started again takes no new one.
    file: Arc<File>,
    stream: Option<Box<dyn Read + Send>>,
    /// The decompressed offset the stream is at.
    at: u64,
    /// The stream ended where it should (the whole file was read).
    ended: bool,
    /// Its first decompressed bytes (`FP_BYTES` at most): its fingerprint.
    head: Vec<u8>,
    /// The last error, and the compressed file's size and time when it came: the stream is not
    /// started again until the file changed (one being compressed grows; a corrupt one would
    /// otherwise be decompressed from its start again at every look for `rotate_wait`).
    failed: Option<(Stamp, io::ErrorKind, String)>,
    /// How many times the stream was started (for the tests).
    starts: u32,
}

impl Decoded {
    /// Opens the decompressed stream of `file` (its own descriptor, `dup`ed) and reads its first
    /// bytes. Fails when they cannot be decompressed (a corrupt file, or one still being written
    /// that is too short yet).
    pub fn open(file: &File, codec: Codec) -> io::Result<Decoded> {
        let mut d = Decoded {
            codec,
            file: Arc::new(file.try_clone()?),
            stream: None,
            at: 0,
            ended: false,
            head: Vec::new(),
            failed: None,
            starts: 0,
        };
        let mut head = vec![0u8; FP_BYTES as usize];
        let mut len = 0;
        while len < head.len() {
            let n = d.read_at(&mut head[len..], len as u64)?;
            if n == 0 {
                break;
            }
            len += n;
        }
        head.truncate(len);
        d.head = head;
        Ok(d)
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The fingerprint of its decompressed first bytes.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_bytes(&self.head)
    }

    /// Its first decompressed bytes (`FP_BYTES` at most).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Whether the whole stream was read (a compressed file does not grow: nothing more comes).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Reads decompressed bytes at `offset`. An error leaves the stream to be started again at
    /// the next read (a file still being compressed has grown by then; a corrupt one fails again).
    pub fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if let Some((stamp, kind, text)) = &self.failed {
            if Stamp::of(&self.file.metadata()?) == *stamp {
                return Err(io::Error::new(*kind, text.clone()));
            }
            self.failed = None;
        }
        if offset < self.at || self.stream.is_none() {
            self.stream = Some(self.codec.stream(self.file.clone())?);
            self.starts += 1;
            self.at = 0;
            self.ended = false;
        }
        let result = self.read_from(buf, offset);
        if let Err(e) = &result {
            self.stream = None;
            if let Ok(m) = self.file.metadata() {
                self.failed = Some((Stamp::of(&m), e.kind(), e.to_string()));
            }
        }
        result
    }

    fn read_from(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let stream = self.stream.as_mut().expect("a stream is open");
        if offset > self.at {
            let skipped = io::copy(&mut stream.take(offset - self.at), &mut io::sink())?;
            self.at += skipped;
            if self.at < offset {
                self.ended = true;
                return Ok(0); // the stream ends before the offset
            }
        }
        let n = stream.read(buf)?;
        self.at += n as u64;
        self.ended = n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// A rotated file as the position store sees it (`Probe`): a plain file answers from its bytes, a
/// compressed one from its decompressed first bytes.
pub enum Generation {
    Plain(File),
    Compressed(File, Decoded),
}

impl Generation {
    /// What `file` is; None for a compressed file whose first bytes cannot be decompressed, and
    /// for one too short to tell: empty, or the start of a magic number (logrotate creates the
    /// `.gz` empty and then writes it: read as plain, its compressed bytes would go out as
    /// lines).
    pub fn of(file: File) -> Option<Generation> {
        let (head, n) = head_of(&file)?;
        match sniff_head(&head[..n]) {
            Sniffed::Unsure => None,
            Sniffed::Plain => Some(Generation::Plain(file)),
            Sniffed::Compressed(codec) => {
                let decoded = Decoded::open(&file, codec).ok()?;
                Some(Generation::Compressed(file, decoded))
            }
        }
    }

    pub fn into_parts(self) -> (File, Option<Decoded>) {
        match self {
            Generation::Plain(f) => (f, None),
            Generation::Compressed(f, d) => (f, Some(d)),
        }
    }

    pub fn is_compressed(&self) -> bool {
        matches!(self, Generation::Compressed(..))
    }
}

impl Probe for Generation {
    /// A compressed file's decompressed size is not known without reading it all: as large as
    /// any position (`holds_more_than` says whether anything lies past one).
    fn size(&self) -> u64 {
        match self {
            Generation::Plain(f) => f.size(),
            Generation::Compressed(..) => u64::MAX,
        }
    }

    fn begins_with(&self, fp: &Fingerprint) -> bool {
        match self {
            Generation::Plain(f) => f.begins_with(fp),
            Generation::Compressed(_, d) => head_begins_with(&d.head, fp),
        }
    }

    /// A compressed file is taken to hold the bytes before a position its first bytes match: the
    /// check would decompress everything up to it.
    fn holds_before(&self, offset: u64, near: &Fingerprint) -> bool {
        match self {
            Generation::Plain(f) => f.holds_before(offset, near),
            Generation::Compressed(..) => true,
        }
    }

    /// gzip's trailer holds the size of the original modulo 2^32: equal to the offset's, the file
    /// was read to its end (a remainder of exactly a multiple of 4 GiB is taken for none). The
    /// others keep no such size: the rest is decompressed to find out.
    fn holds_more_than(&self, offset: u64) -> bool {
        match self {
            Generation::Plain(f) => f.size() > offset,
            Generation::Compressed(f, d) => match d.codec {
                Codec::Gzip => gzip_size_mod32(f).is_none_or(|size| size != offset as u32),
                Codec::Bzip2 | Codec::Xz | Codec::Zstd => true,
            },
        }
    }
}

/// Whether decompressed first bytes `head` begin with the bytes `fp` covers.
pub fn head_begins_with(head: &[u8], fp: &Fingerprint) -> bool {
    fp.len as usize <= head.len() && Fingerprint::of_bytes(&head[..fp.len as usize]) == *fp
}

/// The last 4 bytes of a gzip file: the size of its (last member's) original, modulo 2^32.
fn gzip_size_mod32(file: &File) -> Option<u32> {
    let len = file.metadata().ok()?.len();
    let mut tail = [0u8; 4];
    file.read_exact_at(&mut tail, len.checked_sub(4)?).ok()?;
    Some(u32::from_le_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| format!("line {i} of a generation\n").into_bytes()).collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn file_of(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> File {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        File::open(p).unwrap()
    }

    /// Reads the whole decompressed stream from `offset`, in pieces of `chunk`.
    fn read_all(d: &mut Decoded, mut offset: u64, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            let n = d.read_at(&mut buf, offset).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
            offset += n as u64;
        }
    }

    fn bzip2(data: &[u8]) -> Vec<u8> {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    type Compress = fn(&[u8]) -> Vec<u8>;

    fn zst(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 3).unwrap()
    }

    #[test]
    fn every_codec_reads_as_the_original_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let original = lines(5000);
        let all = [
            ("a.log.1.gz", gzip(&original), Codec::Gzip),
            ("a.log.1.bz2", bzip2(&original), Codec::Bzip2),
            ("a.log.1.xz", xz(&original), Codec::Xz),
            ("a.log.1.zst", zst(&original), Codec::Zstd),
        ];
        for (name, bytes, codec) in all {
            let f = file_of(&dir, name, &bytes);
            let (head, n) = head_of(&f).unwrap();
            assert_eq!(sniff_head(&head[..n]), Sniffed::Compressed(codec));
            let mut d = Decoded::open(&f, codec).unwrap();
            assert_eq!(d.fingerprint(), Fingerprint::of_bytes(&original[..256]));
            assert_eq!(read_all(&mut d, 0, 4096), original, "{name}");
            assert!(d.ended());
            // From the middle, and again from an earlier offset (the stream starts again).
            assert_eq!(read_all(&mut d, 70_000, 1000), &original[70_000..]);
            assert_eq!(read_all(&mut d, 10, 65536), &original[10..]);
            // Past the end: nothing, and ended.
            assert_eq!(read_all(&mut d, original.len() as u64 + 5, 100), b"");
            assert!(d.ended());
        }
    }

    #[test]
    fn concatenated_members_are_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (lines(10), lines(20));
        let all: [(Codec, Compress); 4] =
            [(Codec::Gzip, gzip), (Codec::Bzip2, bzip2), (Codec::Xz, xz), (Codec::Zstd, zst)];
        for (codec, compress) in all {
            let f = file_of(&dir, "m", &[compress(&a), compress(&b)].concat());
            let mut d = Decoded::open(&f, codec).unwrap();
            assert_eq!(read_all(&mut d, 0, 100), [a.clone(), b.clone()].concat(), "{codec:?}");
        }
    }

    /// Text that begins like a magic number is text: bzip2's "BZh" is only taken with its block
    /// magic after it.
    #[test]
    fn a_line_that_begins_like_a_magic_number_is_plain() {
        let dir = tempfile::tempdir().unwrap();
        for text in [&b"BZh9 is a log line\n"[..], b"BZh1 what a start\n", b"BZhx\n"] {
            let g = Generation::of(file_of(&dir, "t.log", text)).unwrap();
            assert!(!g.is_compressed(), "{:?}", String::from_utf8_lossy(text));
        }
        // Too short to tell: left until it grows.
        assert!(Generation::of(file_of(&dir, "s.log", b"BZh9")).is_none());
        assert_eq!(sniff_head(&bzip2(b"")), Sniffed::Compressed(Codec::Bzip2), "an empty stream");
        assert_eq!(sniff_head(&xz(b"x")[..5]), Sniffed::Unsure);
    }

    #[test]
    fn a_truncated_stream_fails_and_is_read_again_once_whole() {
        let dir = tempfile::tempdir().unwrap();
        let original = lines(20_000);
        let whole = gzip(&original);
        let p = dir.path().join("t.gz");
        std::fs::write(&p, &whole[..whole.len() / 2]).unwrap();
        let f = File::open(&p).unwrap();
        let mut d = Decoded::open(&f, Codec::Gzip).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut offset = 0;
        let err = loop {
            match d.read_at(&mut buf, offset) {
                Ok(0) => panic!("a truncated stream ended cleanly"),
                Ok(n) => offset += n as u64,
                Err(e) => break e,
            }
        };
        assert!(!d.ended(), "{err}");
        // Asked again unchanged: the same error, without decompressing it all again.
        let starts = d.starts;
        for _ in 0..3 {
            assert_eq!(d.read_at(&mut buf, offset).unwrap_err().kind(), err.kind());
        }
        assert_eq!(d.starts, starts, "a failed stream is started again only once the file changed");
        // Finished by the compressor meanwhile: reading on at the same offset works.
        std::fs::write(&p, &whole).unwrap();
        assert_eq!(read_all(&mut d, offset, 1 << 16), &original[offset as usize..]);
    }

    #[test]
    fn the_store_sees_a_compressed_file_by_its_decompressed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let original = lines(100);
        let plain = Generation::of(file_of(&dir, "p", &original)).unwrap();
        let gz = Generation::of(file_of(&dir, "p.gz", &gzip(&original))).unwrap();
        assert!(!plain.is_compressed() && gz.is_compressed());
        let fp = Fingerprint::of_bytes(&original[..256]);
        assert!(plain.identified_by(&fp) && gz.identified_by(&fp));
        assert!(!gz.identified_by(&Fingerprint::of_bytes(b"other")));
        let end = original.len() as u64;
        assert!(gz.holds_more_than(end - 1) && !gz.holds_more_than(end));
        assert!(plain.holds_more_than(end - 1) && !plain.holds_more_than(end));
        // Garbage behind a gzip magic number is no generation.
        assert!(Generation::of(file_of(&dir, "bad.gz", b"\x1f\x8bgarbage")).is_none());
        // A `.gz` logrotate has only begun to write: not read (as plain, its bytes were lines).
        assert!(Generation::of(file_of(&dir, "new.gz", b"")).is_none());
        assert!(Generation::of(file_of(&dir, "new2.gz", b"\x1f")).is_none());
        assert!(Generation::of(file_of(&dir, "new.zst", b"\x28\xb5\x2f")).is_none());
        assert!(!Generation::of(file_of(&dir, "tiny", b"a\n")).unwrap().is_compressed());
    }
}
