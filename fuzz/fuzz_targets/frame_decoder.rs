//! The frame decoder on any byte stream in any chunking: no panic, memory
//! within its bound, the same frames however the stream is split, and
//! decoded frames re-encode to a stream that decodes to the same frames.
#![no_main]

use chatd::core::wire::{Decoder, FrameError, HEADER_LEN, encode_frame};
use libfuzzer_sys::fuzz_target;

/// Decodes `stream`, pushing at most `space()` bytes at a time (as the
/// daemon does) in chunks whose sizes come from `cuts`.
fn decode(stream: &[u8], cuts: &[u8], max_frame: usize) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut d = Decoder::new(max_frame);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut cut = cuts.iter().cycle();
    while pos < stream.len() {
        let want = usize::from(*cut.next().unwrap_or(&255)).max(1);
        let n = want.min(d.space()).min(stream.len() - pos);
        if n == 0 {
            // No space and no frame: only possible after a framing error.
            assert!(d.next_frame().is_none());
            break;
        }
        d.push(&stream[pos..pos + n]);
        pos += n;
        assert!(
            d.buffered() <= HEADER_LEN + max_frame,
            "buffer over its bound"
        );
        while let Some(f) = d.next_frame() {
            let failed = f.is_err();
            out.push(f);
            if failed {
                return out;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max_frame = usize::from(data[0]) * 4 + 1;
    let ncuts = usize::from(data[1] % 16).min(data.len() - 2);
    let (cuts, stream) = data[2..].split_at(ncuts);
    let whole = decode(stream, &[255], max_frame);
    let chunked = decode(stream, if cuts.is_empty() { &[1] } else { cuts }, max_frame);
    assert_eq!(whole, chunked, "chunking changed the result");
    let frames: Vec<Vec<u8>> = whole.into_iter().filter_map(Result::ok).collect();
    for f in &frames {
        assert!(!f.is_empty() && f.len() <= max_frame);
    }
    let again: Vec<u8> = frames.iter().flat_map(|f| encode_frame(f)).collect();
    let redecoded: Vec<Vec<u8>> = decode(&again, &[7], max_frame)
        .into_iter()
        .map(|r| r.expect("re-encoded frames decode"))
        .collect();
    assert_eq!(frames, redecoded);
});
