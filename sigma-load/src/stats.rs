//! Measurements: delay samples and their percentiles, errors counted by kind, and a process's
//! CPU time and memory from `/proc`.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Delay samples, kept exactly (a 60 s run of 500 viewers holds a few hundred thousand).
#[derive(Clone, Debug, Default)]
pub struct Delays {
    micros: Vec<u32>,
}

impl Delays {
    /// Records one delay (saturating at about 71 minutes).
    pub fn record(&mut self, d: Duration) {
        self.micros
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    /// Adds all of `other`'s samples.
    pub fn merge(&mut self, other: &Delays) {
        self.micros.extend_from_slice(&other.micros);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// Nearest-rank percentiles of the samples.
    pub fn percentiles(&self) -> Percentiles {
        let mut v = self.micros.clone();
        v.sort_unstable();
        let rank = |p: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
            f64::from(v[i.clamp(1, v.len()) - 1]) / 1000.0
        };
        Percentiles {
            count: v.len() as u64,
            p50_ms: rank(50.0),
            p95_ms: rank(95.0),
            p99_ms: rank(99.0),
            max_ms: v.last().map_or(0.0, |m| f64::from(*m) / 1000.0),
        }
    }
}

/// Summary of a set of delays, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Errors counted by kind (`"connect"`, `"http 503"`, `"timeout"`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ErrorCounts(BTreeMap<String, u64>);

impl ErrorCounts {
    /// Counts one error of `kind`.
    pub fn add(&mut self, kind: impl Into<String>) {
        *self.0.entry(kind.into()).or_default() += 1;
    }

    /// Adds all of `other`'s counts.
    pub fn merge(&mut self, other: &ErrorCounts) {
        for (k, n) in &other.0 {
            *self.0.entry(k.clone()).or_default() += n;
        }
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `(kind, count)` pairs, sorted by kind.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, n)| (k.as_str(), *n))
    }
}

/// Linux's `USER_HZ`: the unit of `utime`/`stime` in `/proc/PID/stat`, 100 on every Linux ABI
/// (proc(5)).
pub const USER_HZ: u64 = 100;

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessSample {
    /// `utime + stime`, in [`USER_HZ`] ticks.
    pub cpu_ticks: u64,
    /// `VmRSS`, in KiB.
    pub rss_kib: u64,
    /// `VmHWM` (peak RSS), in KiB.
    pub hwm_kib: u64,
}

impl ProcessSample {
    /// Reads `/proc/{pid}/stat` and `/proc/{pid}/status` (`pid` may be `"self"`).
    pub fn read(pid: &str) -> std::io::Result<ProcessSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        Self::parse(&stat, &status).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unexpected /proc/{pid}/stat or status layout"),
            )
        })
    }

    /// Parses the two files' text (proc(5)): `utime` and `stime` are fields 14 and 15 of
    /// `stat`, counted after the parenthesised command name, which may hold spaces.
    pub fn parse(stat: &str, status: &str) -> Option<ProcessSample> {
        let after_comm = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // fields[0] is field 3 (state).
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        let kib = |key: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(ProcessSample {
            cpu_ticks: utime + stime,
            rss_kib: kib("VmRSS:")?,
            hwm_kib: kib("VmHWM:")?,
        })
    }
}

/// The whole machine's CPU time, from the first line of `/proc/stat` (proc(5)), so a report
/// can say how busy the machine was with other work during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineSample {
    /// Non-idle time of all cores (`user nice system irq softirq steal`), in [`USER_HZ`] ticks.
    pub busy_ticks: u64,
    /// Number of cores (`cpuN` lines).
    pub cores: u32,
}

impl MachineSample {
    /// Reads `/proc/stat`.
    pub fn read() -> std::io::Result<MachineSample> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        Self::parse(&stat).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "unexpected /proc/stat layout",
            )
        })
    }

    /// Parses `/proc/stat` text.
    pub fn parse(stat: &str) -> Option<MachineSample> {
        let first = stat.lines().next()?.strip_prefix("cpu ")?;
        let v: Vec<u64> = first
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice] (guest time is
        // already counted in user).
        let busy = v.get(..3)?.iter().sum::<u64>() + v.get(5..8)?.iter().sum::<u64>();
        let cores = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count() as u32;
        Some(MachineSample {
            busy_ticks: busy,
            cores,
        })
    }
}

/// CPU use between two samples as a percentage of one core.
pub fn cpu_percent(start: u64, end: u64, wall: Duration) -> f64 {
    let secs = wall.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    end.saturating_sub(start) as f64 / USER_HZ as f64 / secs * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut d = Delays::default();
        assert_eq!(d.percentiles(), Percentiles::default());
        for ms in 1..=100u64 {
            d.record(Duration::from_millis(ms));
        }
        let p = d.percentiles();
        assert_eq!(
            (p.count, p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        let mut one = Delays::default();
        one.record(Duration::from_micros(1500));
        d.merge(&one);
        assert_eq!(d.len(), 101);
        assert_eq!(one.percentiles().p99_ms, 1.5);
    }

    #[test]
    fn errors_by_kind() {
        let mut e = ErrorCounts::default();
        e.add("http 503");
        e.add("timeout");
        let mut f = ErrorCounts::default();
        f.add("timeout");
        e.merge(&f);
        assert_eq!(e.total(), 3);
        assert_eq!(
            e.iter().collect::<Vec<_>>(),
            [("http 503", 1), ("timeout", 2)]
        );
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"http 503":1,"timeout":2}"#
        );
    }

    #[test]
    fn proc_files() {
        let stat = "4242 (sigma server) S 1 4242 4242 0 -1 4194560 9 0 0 0 1234 567 0 0 20 0 6 0 100 1000 2000 18446744073709551615";
        let status = "Name:\tsigma-server\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        let s = ProcessSample::parse(stat, status).unwrap();
        assert_eq!(
            s,
            ProcessSample {
                cpu_ticks: 1801,
                rss_kib: 10240,
                hwm_kib: 20480
            }
        );
        assert!(ProcessSample::parse("garbage", status).is_none());
        let me = ProcessSample::read("self").unwrap();
        assert!(me.rss_kib > 0 && me.hwm_kib >= me.rss_kib);
        assert_eq!(cpu_percent(100, 250, Duration::from_secs(3)), 50.0);
        let stat = "cpu  10 1 5 1000 7 2 3 4 0 0\ncpu0 5 0 2 500 3 1 1 2 0 0\ncpu1 5 1 3 500 4 1 2 2 0 0\nintr 1\n";
        assert_eq!(
            MachineSample::parse(stat),
            Some(MachineSample {
                busy_ticks: 25,
                cores: 2
            })
        );
        assert!(MachineSample::read().unwrap().cores >= 1);
    }
}
