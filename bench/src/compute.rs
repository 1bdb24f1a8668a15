//! `compute`: the compute worker's kernels beside their anchors, in the same run.
//!
//! - CPU SGEMM (`hyphae-compute`'s `gemm`-crate backend) vs OpenBLAS `cblas_sgemm` (Debian's
//!   libopenblas, opened at run time; `OPENBLAS_CORETYPE` set to the real CPU unless given) at
//!   n = 1024 and 4096, same threads.
//! - Freivalds' check (one round) as a percentage of the CPU GEMM it verifies.
//! - Parity tiles: the extra compute of one parity tile per tile row (`Σ_j B_j` once, then one
//!   tile's GEMM per row) as a percentage of the row's tiles, and rebuilding a lost tile from its
//!   row (with the widened check) beside its anchor, computing it again (GEMM + check).
//! - Vulkan SGEMM vs cuBLAS SGEMM on the same NVIDIA GPU at n = 4096 and 8192, when there is
//!   one: cuBLAS is opened at run time (libcublas.so, libcudart.so), so this builds without CUDA
//!   and skips with a message where either side is missing. Device time for Vulkan is measured
//!   as the difference between a submission of 1+R products and one of 1 (transfers cancel).

use std::time::Instant;

use anyhow::{bail, Context};
use hyphae_compute::cpu::CpuBackend;
use hyphae_compute::scheduler::plan;
use hyphae_compute::vulkan::{DeviceChoice, Input, Step, VulkanBackend};
use hyphae_compute::{freivalds, parity, Matrix};
use serde::Serialize;
use serde_json::json;

/// Options of `hyphae-bench compute`.
#[derive(Debug, clap::Args)]
pub struct ComputeArgs {
    /// Matrix sizes for the CPU comparison.
    #[arg(long, default_values_t = vec![1024usize, 4096])]
    cpu_n: Vec<usize>,
    /// Matrix sizes for the GPU comparison.
    #[arg(long, default_values_t = vec![4096usize, 8192])]
    gpu_n: Vec<usize>,
    /// Repetitions per measurement (the best is kept).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Matrix size for the parity measurement.
    #[arg(long, default_value_t = 1024)]
    parity_n: usize,
    /// Tile edge for the parity measurement (n / tile tiles per row).
    #[arg(long, default_value_t = 256)]
    parity_tile: usize,
    /// Let the GPU comparison use a software Vulkan device (lavapipe; correctness only).
    #[arg(long)]
    allow_software: bool,
    /// Where to write the JSON result.
    #[arg(long, default_value = "bench/results/compute.json")]
    out: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
struct CpuRow {
    n: usize,
    hyphae_gflops: f64,
    openblas_gflops: Option<f64>,
    ratio: Option<f64>,
    freivalds_ms: f64,
    gemm_ms: f64,
    freivalds_overhead_pct: f64,
}

fn best(reps: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn gflops(n: usize, secs: f64) -> f64 {
    2.0 * (n as f64).powi(3) / secs / 1e9
}

/// OPENBLAS_CORETYPE for this CPU (FIELD-NOTES: OpenBLAS mis-detects it in some VMs).
fn coretype() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some("SkylakeX");
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some("Haswell");
        }
    }
    None
}

type CblasSgemm = unsafe extern "C" fn(
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    f32,
    *const f32,
    i32,
    *const f32,
    i32,
    f32,
    *mut f32,
    i32,
);

struct OpenBlas {
    _lib: libloading::Library,
    sgemm: CblasSgemm,
}

impl OpenBlas {
    fn open(threads: usize) -> anyhow::Result<OpenBlas> {
        if std::env::var_os("OPENBLAS_CORETYPE").is_none() {
            if let Some(t) = coretype() {
                std::env::set_var("OPENBLAS_CORETYPE", t);
            }
        }
        std::env::set_var("OPENBLAS_NUM_THREADS", threads.to_string());
        // SAFETY: loading Debian's OpenBLAS runs its initialisers (thread pool); the symbol has
        // the CBLAS signature declared above.
        unsafe {
            let lib = libloading::Library::new("libopenblas.so.0")
                .or_else(|_| libloading::Library::new("libopenblas.so"))
                .context("libopenblas not found (apt install libopenblas-dev)")?;
            let sgemm = *lib.get::<CblasSgemm>(b"cblas_sgemm\0")?;
            Ok(OpenBlas { _lib: lib, sgemm })
        }
    }

    fn gemm(&self, a: &Matrix, b: &Matrix, c: &mut Matrix) {
        let (m, k, n) = (a.rows() as i32, a.cols() as i32, b.cols() as i32);
        const ROW_MAJOR: i32 = 101;
        const NO_TRANS: i32 = 111;
        // SAFETY: row-major m×k, k×n and m×n buffers with leading dimensions k, n, n.
        unsafe {
            (self.sgemm)(
                ROW_MAJOR,
                NO_TRANS,
                NO_TRANS,
                m,
                n,
                k,
                1.0,
                a.data().as_ptr(),
                k,
                b.data().as_ptr(),
                n,
                0.0,
                c.data_mut().as_mut_ptr(),
                n,
            )
        }
    }
}

fn cpu_rows(args: &ComputeArgs, threads: usize) -> anyhow::Result<Vec<CpuRow>> {
    let cpu = CpuBackend::new(threads);
    let blas = match OpenBlas::open(threads) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("compute: OpenBLAS anchor skipped: {e:#}");
            None
        }
    };
    let mut rows = Vec::new();
    for &n in &args.cpu_n {
        let a = Matrix::random(n, n, 1)?;
        let b = Matrix::random(n, n, 2)?;
        let mut c = cpu.sgemm(&a, &b)?; // warm-up
        let ours = best(args.reps, || {
            c = cpu.sgemm(&a, &b)?;
            Ok(())
        })?;
        let theirs = match &blas {
            Some(blas) => {
                let mut c2 = Matrix::zeros(n, n)?;
                blas.gemm(&a, &b, &mut c2);
                Some(best(args.reps, || {
                    blas.gemm(&a, &b, &mut c2);
                    Ok(())
                })?)
            }
            None => None,
        };
        let check = best(args.reps, || {
            if freivalds::check(&a, &b, &c, 1, 9)?.is_some() {
                bail!("Freivalds rejected an honest product at n={n}");
            }
            Ok(())
        })?;
        let row = CpuRow {
            n,
            hyphae_gflops: gflops(n, ours),
            openblas_gflops: theirs.map(|t| gflops(n, t)),
            ratio: theirs.map(|t| t / ours),
            freivalds_ms: check * 1e3,
            gemm_ms: ours * 1e3,
            freivalds_overhead_pct: 100.0 * check / ours,
        };
        println!(
            "compute cpu n={n}: hyphae {:.1} GFLOP/s, openblas {} GFLOP/s, ratio {}, freivalds {:.2}% ({:.1} ms)",
            row.hyphae_gflops,
            row.openblas_gflops.map_or("-".into(), |g| format!("{g:.1}")),
            row.ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            row.freivalds_overhead_pct,
            row.freivalds_ms
        );
        rows.push(row);
    }
    Ok(rows)
}

#[derive(Debug, Serialize)]
struct ParityRow {
    n: usize,
    tile: usize,
    tiles_per_row: usize,
    /// The GEMMs of one row's tiles.
    row_ms: f64,
    /// The parity tile's GEMM (one per row).
    parity_tile_ms: f64,
    /// `Σ_j B_j`, once per job.
    parity_b_ms: f64,
    /// (parity tile + `Σ_j B_j` / rows) ÷ the row's tiles.
    overhead_pct: f64,
    /// Rebuilding a lost tile from its row, with the widened Freivalds check.
    rebuild_ms: f64,
    /// The anchor: computing the lost tile again, with its Freivalds check.
    recompute_ms: f64,
}

fn parity_row(args: &ComputeArgs, threads: usize) -> anyhow::Result<ParityRow> {
    let cpu = CpuBackend::new(threads);
    let (n, t) = (args.parity_n, args.parity_tile.max(1));
    let a = Matrix::random(n, n, 3)?;
    let b = Matrix::random(n, n, 4)?;
    let tiles = plan(n, n, t);
    let layout = parity::Layout::new(&tiles, t)?;
    let row = layout.row(0).to_vec();
    let ab = a.block(tiles[row[0]].r0, tiles[row[0]].rows, 0, n)?;
    let blocks = row
        .iter()
        .map(|&s| b.block(0, n, tiles[s].c0, tiles[s].cols))
        .collect::<Result<Vec<Matrix>, _>>()?;
    let mut cs = blocks
        .iter()
        .map(|bb| cpu.sgemm(&ab, bb))
        .collect::<Result<Vec<Matrix>, _>>()?; // warm-up
    let row_secs = best(args.reps, || {
        cs = blocks
            .iter()
            .map(|bb| cpu.sgemm(&ab, bb))
            .collect::<Result<Vec<Matrix>, _>>()?;
        Ok(())
    })?;
    let mut pb = layout.parity_b(&b)?;
    let parity_b_secs = best(args.reps, || {
        pb = layout.parity_b(&b)?;
        Ok(())
    })?;
    let mut p = cpu.sgemm(&ab, &pb)?;
    let parity_secs = best(args.reps, || {
        p = cpu.sgemm(&ab, &pb)?;
        Ok(())
    })?;
    // Tile 0 of the row is the lost one.
    let norms = layout.column_norms(&b);
    let extra = parity::extra_frobenius(&norms, 0, parity::frobenius(&pb));
    let rebuild_secs = best(args.reps, || {
        let others: Vec<&Matrix> = cs.iter().skip(1).collect();
        let c0 = parity::rebuild(&p, &others, tiles[row[0]].cols)?;
        if freivalds::check_widened(&ab, &blocks[0], &c0, 1, 9, extra)?.is_some() {
            bail!("a rebuilt tile failed its check at n={n}, tile={t}");
        }
        Ok(())
    })?;
    let recompute_secs = best(args.reps, || {
        let c0 = cpu.sgemm(&ab, &blocks[0])?;
        if freivalds::check(&ab, &blocks[0], &c0, 1, 9)?.is_some() {
            bail!("Freivalds rejected an honest tile at n={n}, tile={t}");
        }
        Ok(())
    })?;
    let rows = layout.row_count() as f64;
    let out = ParityRow {
        n,
        tile: t,
        tiles_per_row: row.len(),
        row_ms: row_secs * 1e3,
        parity_tile_ms: parity_secs * 1e3,
        parity_b_ms: parity_b_secs * 1e3,
        overhead_pct: 100.0 * (parity_secs + parity_b_secs / rows) / row_secs,
        rebuild_ms: rebuild_secs * 1e3,
        recompute_ms: recompute_secs * 1e3,
    };
    println!(
        "compute parity n={n} tile={t}: +{:.1}% compute per row ({} tiles; 1/{} = {:.1}%), rebuild {:.2} ms vs recompute {:.2} ms",
        out.overhead_pct,
        out.tiles_per_row,
        out.tiles_per_row,
        100.0 / out.tiles_per_row as f64,
        out.rebuild_ms,
        out.recompute_ms
    );
    Ok(out)
}

/// Vulkan device time per n×n SGEMM: (t(1+R products) − t(1 product)) / R.
fn vulkan_gflops(gpu: &VulkanBackend, n: usize, reps: usize) -> anyhow::Result<f64> {
    let a = Matrix::random(n, n, 1)?;
    let b = Matrix::random(n, n, 2)?;
    let r = 4;
    let program = |count: usize| -> Vec<Step> {
        (0..count)
            .map(|_| Step::sgemm(0, 1, 2, n as u32, n as u32, n as u32))
            .collect()
    };
    let inputs = [
        Input::Data(a.data()),
        Input::Data(b.data()),
        Input::Zeroed(n * n),
    ];
    gpu.execute(&inputs, &program(1), &[2])?; // warm-up: pipeline, allocator
    let one = best(reps, || {
        gpu.execute(&inputs, &program(1), &[2])
            .map(|_| ())
            .map_err(Into::into)
    })?;
    let many = best(reps, || {
        gpu.execute(&inputs, &program(1 + r), &[2])
            .map(|_| ())
            .map_err(Into::into)
    })?;
    Ok(gflops(n, ((many - one) / r as f64).max(1e-9)))
}

mod cublas {
    //! cuBLAS through dlopen: nothing CUDA at build time.
    use std::ffi::c_void;

    use anyhow::{bail, Context};

    type Malloc = unsafe extern "C" fn(*mut *mut c_void, usize) -> i32;
    type Free = unsafe extern "C" fn(*mut c_void) -> i32;
    type Memcpy = unsafe extern "C" fn(*mut c_void, *const c_void, usize, i32) -> i32;
    type Sync = unsafe extern "C" fn() -> i32;
    type Create = unsafe extern "C" fn(*mut *mut c_void) -> i32;
    type Destroy = unsafe extern "C" fn(*mut c_void) -> i32;
    type Sgemm = unsafe extern "C" fn(
        *mut c_void,
        i32,
        i32,
        i32,
        i32,
        i32,
        *const f32,
        *const f32,
        i32,
        *const f32,
        i32,
        *const f32,
        *mut f32,
        i32,
    ) -> i32;

    /// cuBLAS SGEMM GFLOP/s at n (column-major; the product of random data either way).
    pub fn gflops(n: usize, reps: usize) -> anyhow::Result<f64> {
        // SAFETY: the libraries are NVIDIA's; the symbols have the documented C signatures;
        // every pointer passed is a device allocation of the right size or a host slice.
        unsafe {
            let rt = ["libcudart.so", "libcudart.so.12", "libcudart.so.11.0"]
                .iter()
                .find_map(|n| libloading::Library::new(n).ok())
                .context("libcudart not found (no CUDA runtime on this machine)")?;
            let bl = ["libcublas.so", "libcublas.so.12", "libcublas.so.11"]
                .iter()
                .find_map(|n| libloading::Library::new(n).ok())
                .context("libcublas not found (no cuBLAS on this machine)")?;
            let malloc = *rt.get::<Malloc>(b"cudaMalloc\0")?;
            let free = *rt.get::<Free>(b"cudaFree\0")?;
            let memcpy = *rt.get::<Memcpy>(b"cudaMemcpy\0")?;
            let sync = *rt.get::<Sync>(b"cudaDeviceSynchronize\0")?;
            let create = *bl.get::<Create>(b"cublasCreate_v2\0")?;
            let destroy = *bl.get::<Destroy>(b"cublasDestroy_v2\0")?;
            let sgemm = *bl.get::<Sgemm>(b"cublasSgemm_v2\0")?;
            let bytes = n * n * 4;
            let host: Vec<f32> = (0..n * n).map(|i| ((i % 97) as f32) / 97.0 - 0.5).collect();
            let mut bufs = [std::ptr::null_mut(); 3];
            for b in &mut bufs {
                if malloc(b, bytes) != 0 {
                    bail!("cudaMalloc failed");
                }
                memcpy(*b, host.as_ptr().cast(), bytes, 1);
            }
            let mut handle = std::ptr::null_mut();
            if create(&mut handle) != 0 {
                bail!("cublasCreate failed");
            }
            let (one, zero) = (1.0f32, 0.0f32);
            let ni = n as i32;
            let run = || {
                sgemm(
                    handle,
                    0,
                    0,
                    ni,
                    ni,
                    ni,
                    &one,
                    bufs[0].cast(),
                    ni,
                    bufs[1].cast(),
                    ni,
                    &zero,
                    bufs[2].cast(),
                    ni,
                );
                sync();
            };
            run();
            let mut best = f64::INFINITY;
            for _ in 0..reps.max(1) {
                let t = std::time::Instant::now();
                run();
                best = best.min(t.elapsed().as_secs_f64());
            }
            destroy(handle);
            for b in bufs {
                free(b);
            }
            Ok(super::gflops(n, best))
        }
    }
}

/// Runs the benchmark.
pub fn run(args: ComputeArgs) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = cpu_rows(&args, threads)?;
    let parity = parity_row(&args, threads)?;
    let mut gpu_rows = Vec::new();
    let mut gpu_note = None;
    match VulkanBackend::open(&DeviceChoice {
        name_contains: None,
        allow_software: args.allow_software,
    }) {
        Err(e) => gpu_note = Some(format!("GPU comparison skipped: {e}")),
        Ok(gpu) => {
            let device = gpu.device().clone();
            for &n in &args.gpu_n {
                let ours = vulkan_gflops(&gpu, n, args.reps)?;
                let theirs = cublas::gflops(n, args.reps);
                if let Err(e) = &theirs {
                    gpu_note = Some(format!("cuBLAS anchor skipped: {e:#}"));
                }
                let theirs = theirs.ok();
                println!(
                    "compute gpu {} n={n}: vulkan {ours:.0} GFLOP/s, cublas {} GFLOP/s",
                    device.name,
                    theirs.map_or("-".into(), |g| format!("{g:.0}"))
                );
                gpu_rows.push(json!({
                    "device": device.name, "n": n, "vulkan_gflops": ours,
                    "cublas_gflops": theirs, "ratio": theirs.map(|t| ours / t),
                }));
            }
        }
    }
    if let Some(note) = &gpu_note {
        eprintln!("compute: {note}");
    }
    let result = json!({
        "bench": "compute",
        "date_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
        "cpu_threads": threads,
        "openblas_coretype": std::env::var("OPENBLAS_CORETYPE").ok(),
        "cpu": cpu,
        "parity": parity,
        "gpu": gpu_rows,
        "gpu_note": gpu_note,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)?;
    Ok(())
}
