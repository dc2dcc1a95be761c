//! Process metrics reported with a run.

/// The process's peak resident memory in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time this process has used so far, user and system, in seconds
/// (Linux `/proc/self/stat`, in the kernel's fixed 100 ticks a second), if
/// known. Beside the wall time it shows how much of the machine a run took:
/// workers that wait or spin cost CPU without moving the wall clock.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_plausible_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = super::peak_rss_bytes().expect("linux reports VmHWM");
            assert!(rss > 1 << 20, "a test process uses more than 1 MiB: {rss}");
        }
    }

    /// Burning CPU on this thread for 0.3 s shows in the process's CPU time
    /// (at least a sixth of it, should the machine be busy, and not seconds).
    #[test]
    fn cpu_time_follows_work() {
        if cfg!(target_os = "linux") {
            let before = super::cpu_seconds().expect("linux reports CPU time");
            let started = std::time::Instant::now();
            let mut x = 0u64;
            while started.elapsed().as_secs_f64() < 0.3 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            let used = super::cpu_seconds().unwrap() - before;
            assert!(
                (0.05..2.0).contains(&used),
                "0.3 s of work took {used} s of CPU"
            );
        }
    }
}
