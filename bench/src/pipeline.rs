//! `pipeline`: the store's CPU path on one core — chunk + encrypt + hash + Reed-Solomon encode
//! (the write path), and the heal path's decode (k shards with data shards missing → chunk),
//! beside the components alone (BLAKE3, AES-256-GCM, RS encode, RS decode) as anchors.
//! Throughput is bytes per second of the measuring thread's CPU time.

use bytes::{Bytes, BytesMut};
use hyphae_chunkstore::chunk_crypto::MeshChunkKeys;
use hyphae_chunkstore::chunking::Chunker;
use hyphae_chunkstore::erasure::ErasureCoder;
use hyphae_chunkstore::pipeline::{decode_chunk, encode_chunk};
use hyphae_chunkstore::redundancy::Redundancy;
use serde::Serialize;

/// Options of `hyphae-bench pipeline`.
#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// MiB of data pushed through each measurement.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// Chunk size in KiB.
    #[arg(long, default_value_t = 4096)]
    chunk_kib: usize,
    /// Layouts to measure, `k+m`.
    #[arg(long, default_values_t = vec!["2+1".to_string(), "4+2".to_string()])]
    layout: Vec<String>,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/pipeline.json")]
    out: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
struct LayoutResult {
    layout: String,
    /// Chunk + encrypt + hash + encode, plaintext GiB/s on one core.
    write_path_gib_s: f64,
    /// Reed-Solomon encode alone (ciphertext GiB/s).
    rs_encode_gib_s: f64,
    /// Heal path: fetch-side decode with m data shards missing → ciphertext (GiB/s of chunk).
    rs_decode_gib_s: f64,
    /// Degraded read: decode + verify chunk id + decrypt (plaintext GiB/s).
    degraded_read_gib_s: f64,
    /// Healthy read: concatenate data shards + verify + decrypt (plaintext GiB/s).
    healthy_read_gib_s: f64,
    /// rs_decode / rs_encode.
    decode_to_encode_ratio: f64,
}

#[derive(Debug, Serialize)]
struct PipelineResult {
    bench: &'static str,
    cpu_threads: usize,
    mib: usize,
    chunk_kib: usize,
    blake3_gib_s: f64,
    aes_gcm_gib_s: f64,
    /// AES-256-GCM alone, RustCrypto's `aes-gcm` (what chunks were sealed with before).
    aes_gcm_rustcrypto_gib_s: f64,
    /// AES-256-GCM alone, ring (what chunks are sealed with now).
    aes_gcm_ring_gib_s: f64,
    layouts: Vec<LayoutResult>,
}

/// The calling thread's CPU time: per-core throughput that holds on a shared, loaded machine
/// (time spent descheduled is not counted; cache and memory-bandwidth contention still is).
struct CpuTimer(f64);

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

impl CpuTimer {
    fn start() -> CpuTimer {
        CpuTimer(thread_cpu_secs())
    }

    fn elapsed_secs(&self) -> f64 {
        (thread_cpu_secs() - self.0).max(1e-9)
    }
}

fn gib_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / (1u64 << 30) as f64
}

fn parse_layout(s: &str) -> anyhow::Result<Redundancy> {
    let (k, m) = s
        .split_once('+')
        .ok_or_else(|| anyhow::anyhow!("layout {s:?} is not k+m"))?;
    Ok(Redundancy::new(k.trim().parse()?, m.trim().parse()?)?)
}

/// Runs the pipeline benchmark.
pub fn run(args: PipelineArgs) -> anyhow::Result<()> {
    let chunk = args.chunk_kib * 1024;
    let total = args.mib << 20;
    let chunks = total.div_ceil(chunk).max(1);
    // Incompressible, distinct input (so nothing dedups or caches).
    let mut source = vec![0u8; chunk * 2];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in source.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let keys = MeshChunkKeys::new(&[42; 32]);

    let t = CpuTimer::start();
    let mut sink = 0u8;
    for i in 0..chunks {
        sink ^= blake3::hash(&source[i % chunk..i % chunk + chunk]).as_bytes()[0];
    }
    let blake3_gib_s = gib_s(chunks * chunk, t.elapsed_secs());

    let t = CpuTimer::start();
    for i in 0..chunks {
        let sealed = keys.seal(BytesMut::from(&source[i % chunk..i % chunk + chunk]));
        sink ^= sealed.ciphertext[0];
    }
    // Includes BLAKE3 for the key derivation and the chunk id: the whole sealing step.
    let aes_gcm_gib_s = gib_s(chunks * chunk, t.elapsed_secs());

    // The cipher alone, both libraries, same key, nonce and buffer sizes.
    let aes_gcm_rustcrypto_gib_s = {
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let cipher =
            aes_gcm::Aes256Gcm::new(aes_gcm::Key::<aes_gcm::Aes256Gcm>::from_slice(&[7u8; 32]));
        let mut buf = source[..chunk].to_vec();
        let t = CpuTimer::start();
        for _ in 0..chunks {
            let tag = cipher
                .encrypt_in_place_detached(aes_gcm::Nonce::from_slice(&[0u8; 12]), b"", &mut buf)
                .map_err(|_| anyhow::anyhow!("aes-gcm refused"))?;
            sink ^= tag[0];
        }
        gib_s(chunks * chunk, t.elapsed_secs())
    };
    let aes_gcm_ring_gib_s = {
        use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &[7u8; 32]).map_err(|_| anyhow::anyhow!("ring key"))?,
        );
        let mut buf = source[..chunk].to_vec();
        let t = CpuTimer::start();
        for _ in 0..chunks {
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key([0u8; 12]),
                    Aad::empty(),
                    &mut buf,
                )
                .map_err(|_| anyhow::anyhow!("ring refused"))?;
            sink ^= tag.as_ref()[0];
        }
        gib_s(chunks * chunk, t.elapsed_secs())
    };

    let mut layouts = Vec::new();
    for spec in &args.layout {
        let r = parse_layout(spec)?;
        let mut coder = ErasureCoder::new();

        // Write path: chunker → seal → encode → shard hashes.
        let t = CpuTimer::start();
        let mut chunker = Chunker::new(chunk);
        let mut encoded = Vec::new();
        let mut keep = None;
        for i in 0..chunks {
            for piece in chunker.push(&source[i % chunk..i % chunk + chunk]) {
                let e = encode_chunk(&keys, &mut coder, r, BytesMut::from(&piece[..]))?;
                sink ^= e.shards[0].0 .0[0];
                if keep.is_none() {
                    keep = Some(e.clone());
                }
                encoded.push(());
            }
        }
        let write_path_gib_s = gib_s(chunks * chunk, t.elapsed_secs());
        let e = keep.ok_or_else(|| anyhow::anyhow!("no chunk encoded"))?;
        let ct = {
            let mut c = Vec::new();
            for (_, s) in e.shards.iter().take(r.k as usize) {
                c.extend_from_slice(s);
            }
            c.truncate(e.ct_len as usize);
            Bytes::from(c)
        };

        let t = CpuTimer::start();
        for _ in 0..chunks {
            sink ^= coder.encode(r, &ct)?[0][0];
        }
        let rs_encode_gib_s = gib_s(chunks * ct.len(), t.elapsed_secs());

        // Heal path: the first m data shards are missing.
        let mut have: Vec<Option<Bytes>> = e.shards.iter().map(|(_, s)| Some(s.clone())).collect();
        for slot in have.iter_mut().take((r.m as usize).min(r.k as usize)) {
            *slot = None;
        }
        let t = CpuTimer::start();
        for _ in 0..chunks {
            sink ^= coder.decode(r, e.ct_len as usize, &have)?[0];
        }
        let rs_decode_gib_s = gib_s(chunks * ct.len(), t.elapsed_secs());

        let t = CpuTimer::start();
        for _ in 0..chunks {
            let p = decode_chunk(
                &keys,
                &mut coder,
                r,
                &e.id,
                e.ct_len as usize,
                &e.wrapped_key,
                &have,
            )?;
            sink ^= p[0];
        }
        let degraded_read_gib_s = gib_s(chunks * chunk, t.elapsed_secs());

        let all: Vec<Option<Bytes>> = e.shards.iter().map(|(_, s)| Some(s.clone())).collect();
        let t = CpuTimer::start();
        for _ in 0..chunks {
            let p = decode_chunk(
                &keys,
                &mut coder,
                r,
                &e.id,
                e.ct_len as usize,
                &e.wrapped_key,
                &all,
            )?;
            sink ^= p[0];
        }
        let healthy_read_gib_s = gib_s(chunks * chunk, t.elapsed_secs());
        drop(encoded);

        layouts.push(LayoutResult {
            layout: spec.clone(),
            write_path_gib_s,
            rs_encode_gib_s,
            rs_decode_gib_s,
            degraded_read_gib_s,
            healthy_read_gib_s,
            decode_to_encode_ratio: rs_decode_gib_s / rs_encode_gib_s,
        });
    }
    std::hint::black_box(sink);

    let result = PipelineResult {
        bench: "pipeline",
        cpu_threads: 1,
        mib: args.mib,
        chunk_kib: args.chunk_kib,
        blake3_gib_s,
        aes_gcm_gib_s,
        aes_gcm_rustcrypto_gib_s,
        aes_gcm_ring_gib_s,
        layouts,
    };
    println!("blake3 {blake3_gib_s:.2} GiB/s, seal (keyed BLAKE3 + AES-256-GCM + id) {aes_gcm_gib_s:.2} GiB/s; AES-256-GCM alone: aes-gcm {aes_gcm_rustcrypto_gib_s:.2} GiB/s, ring {aes_gcm_ring_gib_s:.2} GiB/s");
    for l in &result.layouts {
        println!(
            "{}: write path {:.2} GiB/s/core | RS encode {:.2} | RS decode (heal) {:.2} (ratio {:.2}) | degraded read {:.2} | healthy read {:.2}",
            l.layout, l.write_path_gib_s, l.rs_encode_gib_s, l.rs_decode_gib_s,
            l.decode_to_encode_ratio, l.degraded_read_gib_s, l.healthy_read_gib_s
        );
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&result)?)?;
    Ok(())
}
