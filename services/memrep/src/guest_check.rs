//! The checker for the test guest's memory (services/memrep/guest/wave.c): given a RAM image,
//! finds the guest's wave pages and control page and says whether the image is a consistent
//! snapshot. A replica assembled from a torn epoch (some of an epoch's dirty pages missing, or
//! pages of two epochs mixed) fails this check, which is what the replication tests rely on.

use std::collections::BTreeMap;

/// Guest page size.
pub const PAGE: usize = 4096;
const WORDS: usize = PAGE / 8;

/// Magic of a wave page (XORed with the page index) and of the control page, as wave.c builds
/// them at run time.
fn magic(salt: u64) -> u64 {
    ((0x4859_5048u64 << 32) | 0x5741_5645) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The fill word `word` of page `index` written at iteration `stamp` (same as wave.c).
pub fn fill(index: u64, stamp: u64, word: u64) -> u64 {
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ stamp.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ word;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    x
}

/// What a consistent image says about the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestState {
    /// The last iteration the guest completed (its counter).
    pub counter: u64,
    /// Pages in the wave region.
    pub region: u64,
    /// Pages rewritten per iteration.
    pub wave: u64,
}

/// Why an image is not a consistent snapshot of the guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// No complete control page: the guest has not started its loop (or the image is garbage).
    #[error("no control page found: the guest program has not run yet")]
    NoControlPage,
    /// More than one control page.
    #[error("{0} control pages found")]
    SeveralControlPages(usize),
    /// A wave page is missing entirely.
    #[error("wave page {0} not found")]
    MissingPage(u64),
    /// A wave page carries a stamp the counter does not allow.
    #[error("page {index} has stamp {found}, expected {expected} (counter {counter})")]
    WrongStamp {
        /// The page.
        index: u64,
        /// Its stamp.
        found: u64,
        /// The stamp the counter implies.
        expected: u64,
        /// The control page's counter.
        counter: u64,
    },
    /// A wave page whose fill does not match its own stamp: a torn page.
    #[error("page {0} is torn (fill does not match its stamp)")]
    TornPage(u64),
}

fn word(image: &[u8], page: usize, w: usize) -> u64 {
    let at = page * PAGE + w * 8;
    let mut b = [0u8; 8];
    b.copy_from_slice(&image[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The iteration that last wrote page `index` among iterations `0..=counter` (wave.c: iteration
/// 0 writes every page, iteration c ≥ 1 writes `wave` pages from `(c-1)*wave mod region`).
pub fn expected_stamp(index: u64, counter: u64, region: u64, wave: u64) -> u64 {
    if counter == 0 {
        return 0;
    }
    let last = counter * wave - 1;
    let back = (last + region - index % region) % region;
    if back > last {
        return 0;
    }
    (last - back) / wave + 1
}

/// Whether page `index` is rewritten by iteration `c`.
fn in_wave(index: u64, c: u64, region: u64, wave: u64) -> bool {
    if c == 0 {
        return true;
    }
    let first = ((c - 1) * wave) % region;
    (index + region - first) % region < wave
}

/// Checks a RAM image. A snapshot taken at an instruction boundary may catch the guest inside
/// iteration `counter + 1`: its pages may be already new, cleared (word 0 zero), or old; every
/// other page must carry exactly the stamp the counter implies, with an intact fill.
pub fn check(image: &[u8]) -> Result<GuestState, CheckError> {
    let pages = image.len() / PAGE;
    let (wave_magic, ctrl_magic) = (magic(1), magic(2));
    let mut control = Vec::new();
    let mut wave_pages: BTreeMap<u64, usize> = BTreeMap::new();
    let mut rewriting: Vec<usize> = Vec::new();
    for p in 0..pages {
        let w0 = word(image, p, 0);
        if w0 == ctrl_magic {
            let counter = word(image, p, 3);
            let seal = word(image, p, 4);
            if seal == ctrl_magic ^ counter || seal == 0 {
                control.push(GuestState {
                    counter,
                    region: word(image, p, 1),
                    wave: word(image, p, 2),
                });
            }
            continue;
        }
        let index = word(image, p, 1);
        if w0 == wave_magic ^ index && index < (1 << 32) {
            wave_pages.insert(index, p);
        } else if w0 == 0 && index < (1 << 32) && word(image, p, 3) != 0 {
            // Possibly the page being rewritten when the guest was stopped; judged below.
            rewriting.push(p);
        }
    }
    let state = match control.as_slice() {
        [] => return Err(CheckError::NoControlPage),
        [one] => *one,
        more => return Err(CheckError::SeveralControlPages(more.len())),
    };
    let GuestState {
        counter,
        region,
        wave,
    } = state;
    for index in 0..region {
        let expected = expected_stamp(index, counter, region, wave);
        let Some(&p) = wave_pages.get(&index) else {
            if in_wave(index, counter + 1, region, wave) {
                continue; // cleared for rewriting by iteration counter+1
            }
            return Err(CheckError::MissingPage(index));
        };
        let found = word(image, p, 2);
        let allowed_new = in_wave(index, counter + 1, region, wave) && found == counter + 1;
        if found != expected && !allowed_new {
            return Err(CheckError::WrongStamp {
                index,
                found,
                expected,
                counter,
            });
        }
        if (3..WORDS).any(|w| word(image, p, w) != fill(index, found, w as u64)) {
            return Err(CheckError::TornPage(index));
        }
    }
    let _ = rewriting;
    Ok(state)
}

/// Blocks of the guest's disk counter ring (wave.c `RING`).
pub const DISK_RING: u64 = 16;

/// Why a disk image does not belong with a RAM image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskCheckError {
    /// A ring block that is neither zero nor a valid counter block.
    #[error("disk block {0} is corrupt")]
    Corrupt(u64),
    /// A ring block in the wrong place.
    #[error("disk block {block} holds counter {counter}, which belongs in block {}", counter % DISK_RING)]
    Misplaced {
        /// The block.
        block: u64,
        /// Its counter.
        counter: u64,
    },
    /// The disk's newest counter does not match the RAM's (a torn RAM/disk snapshot).
    #[error("disk counter {disk:?} does not go with RAM counter {ram} (expected {ram} or {})", ram.saturating_sub(1))]
    Mismatch {
        /// The newest counter on the disk.
        disk: Option<u64>,
        /// The counter in RAM.
        ram: u64,
    },
}

/// Checks the test guest's disk (wave.c with `wave_disk=1`) against the RAM counter of the same
/// snapshot: the guest writes disk block `c % 16` with `c` after it publishes `c` in RAM and
/// before it starts `c + 1`, so the disk's newest counter is `c` or `c - 1`. Returns it.
pub fn check_disk(disk: &[u8], ram_counter: u64) -> Result<Option<u64>, DiskCheckError> {
    let dm = magic(3);
    let mut newest: Option<u64> = None;
    for block in 0..DISK_RING.min((disk.len() / PAGE) as u64) {
        let b = block as usize;
        let (w0, c, w2) = (word(disk, b, 0), word(disk, b, 1), word(disk, b, 2));
        if w0 == 0 && c == 0 && w2 == 0 {
            continue;
        }
        if w0 != dm ^ block || w2 != dm ^ c ^ block {
            return Err(DiskCheckError::Corrupt(block));
        }
        if c % DISK_RING != block {
            return Err(DiskCheckError::Misplaced { block, counter: c });
        }
        newest = newest.max(Some(c));
    }
    let ok = match newest {
        None => ram_counter == 0,
        Some(d) => d == ram_counter || d + 1 == ram_counter,
    };
    if !ok {
        return Err(DiskCheckError::Mismatch {
            disk: newest,
            ram: ram_counter,
        });
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Rust model of wave.c writing into a flat image (pages in a shuffled physical order).
    struct Model {
        image: Vec<u8>,
        slot: Vec<usize>,
        ctrl: usize,
        region: u64,
        wave: u64,
    }

    impl Model {
        fn new(region: u64, wave: u64) -> Model {
            let total = region as usize + 8;
            // A fixed permutation: page i lives at physical slot (i*7+3) mod total.
            let slot: Vec<usize> = (0..region as usize).map(|i| (i * 7 + 3) % total).collect();
            let ctrl = (0..total).find(|s| !slot.contains(s)).unwrap();
            Model {
                image: vec![0; total * PAGE],
                slot,
                ctrl,
                region,
                wave,
            }
        }
        fn put(&mut self, page: usize, w: usize, v: u64) {
            let at = page * PAGE + w * 8;
            self.image[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        fn write_page(&mut self, i: u64, c: u64) {
            let p = self.slot[i as usize];
            self.put(p, 0, 0);
            for w in 3..WORDS {
                self.put(p, w, fill(i, c, w as u64));
            }
            self.put(p, 1, i);
            self.put(p, 2, c);
            self.put(p, 0, magic(1) ^ i);
        }
        fn iteration(&mut self, c: u64) {
            let (first, count) = if c == 0 {
                (0, self.region)
            } else {
                (((c - 1) * self.wave) % self.region, self.wave)
            };
            for k in 0..count {
                self.write_page((first + k) % self.region, c);
            }
            let ctrl = self.ctrl;
            self.put(ctrl, 4, 0);
            self.put(ctrl, 0, magic(2));
            self.put(ctrl, 1, self.region);
            self.put(ctrl, 2, self.wave);
            self.put(ctrl, 3, c);
            self.put(ctrl, 4, magic(2) ^ c);
        }
    }

    #[test]
    fn complete_iterations_check() {
        let mut m = Model::new(50, 7);
        for c in 0..40 {
            m.iteration(c);
            let s = check(&m.image).unwrap();
            assert_eq!(s.counter, c);
        }
    }

    #[test]
    fn a_half_done_iteration_still_checks() {
        let mut m = Model::new(50, 7);
        for c in 0..10 {
            m.iteration(c);
        }
        // Iteration 10 rewrote 3 of its 7 pages, then the guest was stopped.
        let first = (9 * 7) % 50;
        for k in 0..3 {
            m.write_page((first + k) % 50, 10);
        }
        // and cleared word 0 of the fourth.
        let p = m.slot[((first + 3) % 50) as usize];
        m.put(p, 0, 0);
        assert_eq!(check(&m.image).unwrap().counter, 9);
    }

    #[test]
    fn a_stale_page_is_caught() {
        let mut m = Model::new(50, 7);
        for c in 0..10 {
            m.iteration(c);
        }
        let before = m.image.clone();
        m.iteration(10);
        // A torn epoch: one page of iteration 10 missing from the replica.
        let victim = m.slot[((9 * 7) % 50) as usize];
        let r = victim * PAGE..(victim + 1) * PAGE;
        m.image[r.clone()].copy_from_slice(&before[r]);
        assert!(matches!(
            check(&m.image),
            Err(CheckError::WrongStamp { .. })
        ));
    }

    #[test]
    fn a_torn_page_is_caught() {
        let mut m = Model::new(50, 7);
        for c in 0..5 {
            m.iteration(c);
        }
        let p = m.slot[20];
        m.put(p, 100, 12345);
        assert_eq!(check(&m.image), Err(CheckError::TornPage(20)));
    }

    #[test]
    fn garbage_has_no_control_page() {
        assert_eq!(check(&vec![7u8; PAGE * 4]), Err(CheckError::NoControlPage));
    }

    #[test]
    fn expected_stamp_matches_a_brute_force_model() {
        for (region, wave) in [(10u64, 3u64), (8, 8), (13, 1), (6, 4)] {
            let mut last = vec![0u64; region as usize];
            for c in 1..40 {
                let first = ((c - 1) * wave) % region;
                for k in 0..wave {
                    last[((first + k) % region) as usize] = c;
                }
                for i in 0..region {
                    assert_eq!(expected_stamp(i, c, region, wave), last[i as usize]);
                }
            }
        }
    }

    fn disk_with(counters: &[u64]) -> Vec<u8> {
        let mut d = vec![0u8; 20 * PAGE];
        let dm = magic(3);
        for &c in counters {
            let b = (c % DISK_RING) as usize;
            for (w, v) in [dm ^ b as u64, c, dm ^ c ^ b as u64]
                .into_iter()
                .enumerate()
            {
                d[b * PAGE + w * 8..b * PAGE + w * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        d
    }

    #[test]
    fn a_disk_goes_with_its_ram_counter_or_the_one_before() {
        let d = disk_with(&(0..=40).collect::<Vec<_>>());
        assert_eq!(check_disk(&d, 40), Ok(Some(40)));
        assert_eq!(check_disk(&d, 41), Ok(Some(40)));
        assert!(matches!(
            check_disk(&d, 39),
            Err(DiskCheckError::Mismatch { .. })
        ));
        assert!(matches!(
            check_disk(&d, 45),
            Err(DiskCheckError::Mismatch { .. })
        ));
        assert_eq!(check_disk(&disk_with(&[]), 0), Ok(None));
        let mut torn = d.clone();
        torn[3 * PAGE + 16] ^= 1;
        assert_eq!(check_disk(&torn, 40), Err(DiskCheckError::Corrupt(3)));
    }
}
