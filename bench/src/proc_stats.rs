//! CPU time and memory of a process, from `/proc` (Linux).

use std::time::Duration;

/// CPU time (user + system) a process has used so far, or `None` when it cannot be read.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_time_from_stat(&stat)
}

/// CPU time of this process.
pub fn own_cpu_time() -> Option<Duration> {
    cpu_time(std::process::id())
}

fn cpu_time_from_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line: utime and stime, 11 and 12 after the name and state.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_second(),
    ))
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system and has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Memory of a process in KiB: (current resident set, peak resident set since it started).
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_a_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        let cpu = cpu_time_from_stat(stat).unwrap();
        assert_eq!(
            cpu,
            Duration::from_secs_f64(300.0 / clock_ticks_per_second())
        );
    }

    #[test]
    fn this_process_has_a_cpu_time_and_a_resident_set() {
        assert!(own_cpu_time().is_some());
        let (now, peak) = rss_kib(std::process::id()).unwrap();
        assert!(peak >= now && now > 0);
    }
}
