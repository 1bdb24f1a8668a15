//! Both backends against the reference GEMM (f64 accumulation) under the documented tolerance
//! (`tolerance`: |ĉ - c| ≤ 2·k·u·(|A||B|)_ij), for odd, power-of-two and rectangular shapes.
//! The Vulkan path runs on whatever device the loader offers; in CI that is lavapipe
//! (mesa-vulkan-drivers, installed by scripts/deps.sh), so a missing device is a failure here.

use hyphae_compute::activation::{self, Activation};
use hyphae_compute::cpu::CpuBackend;
use hyphae_compute::tolerance::check_product;
use hyphae_compute::vulkan::{DeviceChoice, VulkanBackend};
use hyphae_compute::Matrix;

const SQUARES: &[usize] = &[1, 17, 255, 256, 513];
const RECTANGLES: &[(usize, usize, usize)] =
    &[(1, 300, 7), (70, 3, 129), (130, 65, 1), (33, 257, 95)];

fn shapes() -> Vec<(usize, usize, usize)> {
    let mut v: Vec<_> = SQUARES.iter().map(|&n| (n, n, n)).collect();
    v.extend_from_slice(RECTANGLES);
    v
}

fn vulkan() -> VulkanBackend {
    let choice = DeviceChoice {
        name_contains: None,
        allow_software: true,
    };
    VulkanBackend::open(&choice).unwrap_or_else(|e| {
        panic!("no Vulkan device ({e}); scripts/deps.sh installs libvulkan1 + mesa-vulkan-drivers")
    })
}

#[test]
fn cpu_sgemm_matches_reference() {
    let cpu = CpuBackend::new(0);
    for (m, k, n) in shapes() {
        let a = Matrix::random(m, k, 11 + m as u64).unwrap();
        let b = Matrix::random(k, n, 13 + n as u64).unwrap();
        let c = cpu.sgemm(&a, &b).unwrap();
        assert_eq!(check_product(&a, &b, &c).unwrap(), None, "cpu {m}x{k}x{n}");
    }
}

#[test]
fn vulkan_sgemm_matches_reference() {
    let gpu = vulkan();
    eprintln!("device: {:?}", gpu.device());
    for (m, k, n) in shapes() {
        let a = Matrix::random(m, k, 17 + m as u64).unwrap();
        let b = Matrix::random(k, n, 19 + n as u64).unwrap();
        let c = gpu.sgemm(&a, &b).unwrap();
        assert_eq!(
            check_product(&a, &b, &c).unwrap(),
            None,
            "vulkan {m}x{k}x{n}"
        );
    }
}

#[test]
fn vulkan_elementwise_kernels_match_the_cpu() {
    let gpu = vulkan();
    let x = Matrix::from_fn(37, 300, |i, j| ((i * 31 + j * 7) % 23) as f32 / 3.0 - 3.5).unwrap();
    let bias: Vec<f32> = (0..300).map(|j| (j % 5) as f32 * 0.25 - 0.5).collect();
    for act in [Activation::Identity, Activation::Relu, Activation::Gelu] {
        let got = gpu.bias_activation(&x, &bias, act).unwrap();
        let mut want = x.clone();
        activation::bias_activation(&mut want, &bias, act);
        for (g, w) in got.data().iter().zip(want.data()) {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{act:?}: {g} vs {w}"
            );
        }
    }
    let got = gpu.softmax_rows(&x).unwrap();
    let mut want = x.clone();
    activation::softmax_rows(&mut want);
    for (g, w) in got.data().iter().zip(want.data()) {
        assert!(
            (g - w).abs() <= 1e-6 + 1e-5 * w.abs(),
            "softmax: {g} vs {w}"
        );
    }
}

#[test]
fn mismatched_shapes_are_an_error_on_both_backends() {
    let a = Matrix::random(3, 4, 1).unwrap();
    let b = Matrix::random(5, 2, 2).unwrap();
    assert!(CpuBackend::new(1).sgemm(&a, &b).is_err());
    assert!(vulkan().sgemm(&a, &b).is_err());
}

#[test]
fn freivalds_accepts_honest_results_of_both_backends() {
    use hyphae_compute::freivalds;
    let cpu = CpuBackend::new(0);
    let gpu = vulkan();
    // Positive-only inputs are the hardest case for rounding (no cancellation).
    for (m, k, n) in shapes() {
        for (seed, positive) in [(1u64, false), (2, true)] {
            let mut a = Matrix::random(m, k, seed).unwrap();
            let mut b = Matrix::random(k, n, seed + 100).unwrap();
            if positive {
                a.data_mut().iter_mut().for_each(|x| *x = x.abs());
                b.data_mut().iter_mut().for_each(|x| *x = x.abs());
            }
            for c in [cpu.sgemm(&a, &b).unwrap(), gpu.sgemm(&a, &b).unwrap()] {
                assert_eq!(
                    freivalds::check(&a, &b, &c, 3, seed).unwrap(),
                    None,
                    "{m}x{k}x{n}"
                );
            }
        }
    }
}
