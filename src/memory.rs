//! Gives freed heap memory back to the system once a burst is over.
//!
//! glibc's malloc keeps the pages of freed chunks inside its arenas: after a
//! flood of 2,000 WebSockets had closed, a server's resident memory stayed
//! between 14 and 18 MiB for good where it had started at 8.6 MiB, and an
//! attacker could so hold a host's memory at its high-water mark.
//! `malloc_trim(0)` hands the free pages back (10.3 MiB). It walks every
//! arena under that arena's lock, so it runs only when much has been freed
//! since the heap was last at its fullest, never on the steady churn of a
//! call.

use std::time::Duration;

/// How often the heap is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Growth of resident memory, and free bytes held by the allocator, that
/// make a trim worth its locks in a small process: a burst's leftovers, far
/// above what a running call takes and gives back between two looks.
pub const TRIM_AT: u64 = 4 << 20;

/// The same in a process of `resident` bytes: a sixteenth of it when that
/// is more, since a large worker's heap swings by more than 4 MiB between
/// two looks with its calls alone, and a trim takes the arenas' locks.
fn trim_at(resident: u64) -> u64 {
    TRIM_AT.max(resident / 16)
}

/// One look at the process's memory, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Heap {
    /// Memory of the process's own held resident: its anonymous pages
    /// (the binary's code pages are the system's to drop).
    pub resident: u64,
    /// Bytes in the allocator's free chunks.
    pub free: u64,
}

/// When to trim, from looks at the heap: plain data, so the rule is tested
/// without an allocator.
///
/// A trim leaves the freed chunks on the allocator's free lists (only their
/// pages go back), so the free bytes alone cannot say whether there is
/// anything left to give: they stay high after a trim. A trim is due when
/// the allocator holds much free and, since it stood lowest (or since the
/// last trim), either more has been freed (sockets that closed after the
/// last trim) or the process has grown (a burst that came and went between
/// two looks, seen by the pages it left resident).
#[derive(Debug, Default)]
pub struct TrimPolicy {
    /// The least of each since the last trim (or just after it).
    floor: Option<Heap>,
}

impl TrimPolicy {
    /// Takes one look; true when the heap should be trimmed now.
    pub fn observe(&mut self, heap: Heap) -> bool {
        let floor = self.floor.map_or(heap, |f| Heap {
            resident: f.resident.min(heap.resident),
            free: f.free.min(heap.free),
        });
        self.floor = Some(floor);
        let at = trim_at(floor.resident);
        heap.free >= at && (heap.resident >= floor.resident + at || heap.free >= floor.free + at)
    }

    /// After a trim: where the heap then stands is the new floor, so a trim
    /// that could give little back is not tried again at every look.
    pub fn trimmed(&mut self, after: Heap) {
        self.floor = Some(after);
    }
}

/// Looks at the heap every [`CHECK_EVERY`] and trims it when the policy says
/// so, for as long as the runtime lives. Where the allocator is not glibc's
/// there is nothing to do.
pub fn spawn_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        let mut policy = TrimPolicy::default();
        let mut every = tokio::time::interval(CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // Both calls take the arenas' locks: off the runtime's threads.
            let Ok(heap) = tokio::task::spawn_blocking(glibc::look).await else {
                return;
            };
            if policy.observe(heap) {
                let started = std::time::Instant::now();
                let Ok(after) = tokio::task::spawn_blocking(glibc::trim).await else {
                    return;
                };
                policy.trimmed(after);
                tracing::debug!(
                    before_mib = heap.resident >> 20,
                    after_mib = after.resident >> 20,
                    took_ms = started.elapsed().as_secs_f64() * 1e3,
                    "heap trimmed"
                );
            }
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use super::Heap;

    /// The process's resident memory and the allocator's free bytes.
    pub fn look() -> Heap {
        // SAFETY: mallinfo2 only reads the allocator's bookkeeping, under
        // its locks (glibc 2.33 and later; Debian 12 has 2.36).
        let info = unsafe { libc::mallinfo2() };
        Heap {
            resident: resident(),
            free: info.fordblks as u64,
        }
    }

    /// Returns the pages of free chunks to the system; where the process
    /// then stands.
    pub fn trim() -> Heap {
        // SAFETY: malloc_trim takes each arena's lock itself; with a pad of
        // 0 it releases every whole free page.
        unsafe { libc::malloc_trim(0) };
        look()
    }

    fn resident() -> u64 {
        // statm: resident pages, then those of them backed by files.
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let mut fields = statm.split_whitespace().skip(1).map(|f| f.parse::<u64>());
        let (Some(Ok(resident)), Some(Ok(shared))) = (fields.next(), fields.next()) else {
            return 0;
        };
        let pages = resident.saturating_sub(shared);
        // SAFETY: sysconf only reads a constant of the system.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        pages * u64::try_from(page).unwrap_or(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn heap(resident_mib: u64, free_mib: u64) -> Heap {
        Heap {
            resident: resident_mib * MIB,
            free: free_mib * MIB,
        }
    }

    #[test]
    fn a_burst_that_ends_is_trimmed_once() {
        let mut p = TrimPolicy::default();
        assert!(!p.observe(heap(9, 1)));
        // The burst takes memory, and it is all in use.
        assert!(!p.observe(heap(21, 0)));
        // It ends: the process still holds it, the allocator has it free.
        assert!(p.observe(heap(14, 5)));
        p.trimmed(heap(10, 5));
        // Still free on the lists, already given back: nothing to do.
        assert!(!p.observe(heap(10, 5)));
        assert!(!p.observe(heap(11, 5)));
    }

    #[test]
    fn a_burst_between_two_looks_is_seen_by_what_it_leaves() {
        let mut p = TrimPolicy::default();
        assert!(!p.observe(heap(10, 5)));
        // A burst came and went before this look.
        assert!(p.observe(heap(17, 6)));
    }

    #[test]
    fn what_is_freed_after_a_trim_is_trimmed_in_turn() {
        let mut p = TrimPolicy::default();
        p.observe(heap(10, 0));
        assert!(p.observe(heap(20, 5)));
        p.trimmed(heap(18, 5));
        // The rest of the burst's sockets close.
        assert!(!p.observe(heap(18, 6)));
        assert!(p.observe(heap(18, 11)));
    }

    #[test]
    fn the_churn_of_a_call_is_left_alone() {
        let mut p = TrimPolicy::default();
        for i in 0..1000u64 {
            let h = heap(20 + i % 2, 1 + i % 3);
            assert!(!p.observe(h), "look {i}: {h:?}");
        }
    }

    #[test]
    fn a_large_process_trims_only_for_a_burst_of_its_size() {
        let mut p = TrimPolicy::default();
        // 1 GiB of calls: their churn moves tens of MiB between looks.
        p.observe(heap(1024, 2));
        assert!(!p.observe(heap(1060, 40)));
        assert!(p.observe(heap(1100, 70)));
    }

    #[test]
    fn a_process_that_grows_into_what_it_uses_is_left_alone() {
        let mut p = TrimPolicy::default();
        for mib in 10..200 {
            assert!(!p.observe(heap(mib, 1)), "at {mib} MiB");
        }
    }

    #[test]
    fn a_trim_that_gives_little_is_not_tried_at_every_look() {
        let mut p = TrimPolicy::default();
        p.observe(heap(10, 0));
        assert!(p.observe(heap(20, 8)));
        // The free chunks were too small to hold whole pages.
        p.trimmed(heap(19, 8));
        for _ in 0..10 {
            assert!(!p.observe(heap(19, 8)));
        }
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_trim_gives_the_pages_back() {
        // 40 MB of small blocks, one in sixteen kept: the freed runs lie
        // between blocks in use, where shrinking the heap's top cannot
        // reach them.
        let mut p = TrimPolicy::default();
        p.observe(glibc::look());
        let mut blocks: Vec<Vec<u8>> = (0..40_000).map(|_| vec![1u8; 1000]).collect();
        let mut i = 0;
        blocks.retain(|_| {
            i += 1;
            i % 16 == 0
        });
        let freed = glibc::look();
        assert!(p.observe(freed), "{freed:?}");
        let after = glibc::trim();
        assert!(
            after.resident + 10 * MIB <= freed.resident,
            "{freed:?}, then {after:?}"
        );
        drop(blocks);
    }
}
