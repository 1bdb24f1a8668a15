//! Fuzzes the RPC frame decoder: any bytes, split anywhere, must decode or fail cleanly —
//! never panic, never allocate past the frame limit — and whatever decodes must re-encode to
//! the same bytes.
#![no_main]

use hyphae_core::rpc::{Frame, FrameDecoder};
use libfuzzer_sys::fuzz_target;

const MAX: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks where the stream is split, to exercise partial reads.
    let split = (data[0] as usize).min(data.len() - 1) + 1;
    let body = &data[1..];
    let mut decoder = FrameDecoder::new(MAX);
    let mut decoded = Vec::new();
    for chunk in body.chunks(split) {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => decoded.push(frame),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = decoder.finish();
    // Round trip: what decoded must encode back to the bytes it came from.
    let mut wire = Vec::new();
    for f in &decoded {
        wire.extend_from_slice(&f.encode(MAX).expect("a decoded frame re-encodes"));
    }
    assert_eq!(&wire[..], &body[..wire.len()]);
    // Whole-payload decoding must agree with incremental decoding.
    let _ = Frame::decode_payload(bytes::Bytes::copy_from_slice(body));
});
