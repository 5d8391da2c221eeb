//! The cores a worker may use: how many shards it runs by default, the
//! core each shard's thread is pinned to, and the priority it runs at.

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

/// The nice value media threads ask for. The kernel shares a busy core
/// among its runnable threads by weight, so one media thread beside four
/// busy threads of other programs got a fifth of its core and its calls
/// lost 14 % of their packets (`docs/performance.md`); at -10 its weight
/// is nine times a default thread's, so the same four leave it about 70 %.
/// It takes CPU only for the packets it has, so a quiet worker leaves the
/// core to the others.
pub const MEDIA_NICE: i32 = -10;

/// Sets the calling thread's nice value. A value below the current one
/// needs `CAP_SYS_NICE` (or an `RLIMIT_NICE` that allows it).
pub fn set_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority has no memory preconditions; PRIO_PROCESS with a
    // thread id sets that thread's nice value on Linux.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, thread_id() as libc::id_t, nice) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// CPU seconds one thread of this process ran (a media shard's), from
/// `/proc/self/task/TID/schedstat` (nanoseconds, finer than the ticks of
/// `stat`); 0 when it cannot be read.
pub fn thread_cpu_seconds(tid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
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

    #[test]
    fn a_thread_raises_its_own_priority_or_is_told_it_may_not() {
        // SAFETY: as in `set_nice`.
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, thread_id() as libc::id_t) };
        let (result, nice) = std::thread::spawn(|| {
            let result = set_nice(-3);
            // SAFETY: as in `set_nice`.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, thread_id() as libc::id_t) };
            (result, nice)
        })
        .join()
        .unwrap();
        match result {
            Ok(()) => assert_eq!(nice, -3, "the thread runs at what it asked"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied),
        }
        // The process's other threads keep theirs.
        // SAFETY: as in `set_nice`.
        let here = unsafe { libc::getpriority(libc::PRIO_PROCESS, thread_id() as libc::id_t) };
        assert_eq!(here, before);
    }
}
