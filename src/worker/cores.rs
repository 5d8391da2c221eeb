//! The cores a worker may use: how many shards it runs by default, and
//! the core each shard's thread is pinned to.

/// The cores this process may run on (its CPU affinity, as `taskset` or a
/// container's cpuset leave it), in order; all of them when it cannot be
/// read.
pub fn allowed() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity writes
    // at most its size into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid cpu_set_t of `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..n).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins the calling thread to `core`. Best effort: a core the process may
/// not use is refused by the kernel, and the thread runs where it may.
pub fn pin(core: usize) {
    // SAFETY: as in `allowed`; CPU_SET stays within the set for a core
    // below CPU_SETSIZE, which is checked.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if core >= libc::CPU_SETSIZE as usize {
        return;
    }
    unsafe { libc::CPU_SET(core, &mut set) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid cpu_set_t; 0 names the calling thread.
    if unsafe { libc::sched_setaffinity(0, size, &set) } != 0 {
        tracing::debug!(
            core,
            "cannot pin the media thread: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The calling thread's id, as `/proc/self/task/` names it.
pub fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_may_use_at_least_the_core_it_runs_on() {
        let cores = allowed();
        assert!(!cores.is_empty());
        // Pinned to one of its cores, a thread sees only that one.
        let core = *cores.last().unwrap();
        let seen = std::thread::spawn(move || {
            pin(core);
            allowed()
        })
        .join()
        .unwrap();
        assert_eq!(seen, vec![core]);
        assert!(thread_id() > 0);
    }
}
