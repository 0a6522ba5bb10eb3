//! Figures, the table people read and the JSON lines machines read.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use crate::system::{ClientKind, System};

/// One measurement: a scenario at one size against one system (or the floor).
#[derive(Debug, Clone)]
pub struct Figure {
    /// `s1`…`s5`, or `floor`.
    pub scenario: &'static str,
    /// The scenario's size (documents, or round trips).
    pub size: usize,
    /// Which system; `None` for the floor.
    pub system: Option<System>,
    /// Which client drove it.
    pub client: ClientKind,
    /// What happened.
    pub outcome: Outcome,
}

/// A finished measurement, or why there is none.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It ran.
    Measured(Measurement),
    /// It did not finish within the cap, or failed.
    Skipped(String),
}

/// What every figure records.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// Wall time of the timed part.
    pub wall: Duration,
    /// CPU time of the client process (this one) during it.
    pub client_cpu: Option<Duration>,
    /// CPU time of the server process during it.
    pub server_cpu: Option<Duration>,
    /// Peak resident memory of the server process, KiB.
    pub server_peak_rss_kib: Option<u64>,
    /// Scenario-specific figures (latency percentiles, per-operation costs…), in order.
    pub extra: Vec<(&'static str, f64)>,
}

impl Figure {
    fn system_name(&self) -> &'static str {
        self.system.map_or("floor", System::name)
    }

    /// The client's name; the floor has none.
    fn client_name(&self) -> &'static str {
        match self.system {
            Some(_) => self.client.name(),
            None => "-",
        }
    }

    /// One JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::json!({
            "scenario": self.scenario,
            "size": self.size,
            "system": self.system_name(),
            "client": self.client_name(),
        });
        match &self.outcome {
            Outcome::Skipped(why) => object["skipped"] = why.clone().into(),
            Outcome::Measured(m) => {
                object["wall_ms"] = ms(m.wall).into();
                if let Some(cpu) = m.client_cpu {
                    object["client_cpu_ms"] = ms(cpu).into();
                }
                if let Some(cpu) = m.server_cpu {
                    object["server_cpu_ms"] = ms(cpu).into();
                }
                if let Some(rss) = m.server_peak_rss_kib {
                    object["server_peak_rss_kib"] = rss.into();
                }
                for (name, value) in &m.extra {
                    object[*name] = (*value).into();
                }
            }
        }
        object
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The figure each scenario is judged by (wall time unless the scenario says otherwise), and
/// its unit.
fn headline(scenario: &str, m: &Measurement) -> (f64, &'static str) {
    let pick = |name: &str| m.extra.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    match scenario {
        "s2" => (pick("p50_ms").unwrap_or(f64::NAN), "p50 ms"),
        "s5" => (pick("first_find_ms").unwrap_or(f64::NAN), "first find ms"),
        _ => (ms(m.wall), "ms"),
    }
}

/// Writes the table: one row per scenario, size and system, with the ratio tandem / system.
pub fn print_table(figures: &[Figure], out: &mut impl Write) -> std::io::Result<()> {
    let mut rows: BTreeMap<(&str, usize, ClientKind), Vec<&Figure>> = BTreeMap::new();
    for figure in figures {
        rows.entry((figure.scenario, figure.size, figure.client))
            .or_default()
            .push(figure);
    }
    writeln!(
        out,
        "{:<6} {:>7} {:<12} {:<6} {:>12} {:<14} {:>10} {:>10} {:>10} {:>11}  details",
        "",
        "size",
        "system",
        "client",
        "headline",
        "",
        "wall ms",
        "client cpu",
        "server cpu",
        "server rss"
    )?;
    // S1 is also compared with the floor at the same size.
    let floor: BTreeMap<usize, f64> = figures
        .iter()
        .filter(|f| f.scenario == "floor")
        .filter_map(|f| match &f.outcome {
            Outcome::Measured(m) => Some((f.size, ms(m.wall))),
            Outcome::Skipped(_) => None,
        })
        .collect();
    for ((scenario, size, _), group) in rows {
        let tandem = group
            .iter()
            .find(|f| f.system == Some(System::Tandem))
            .and_then(|f| match &f.outcome {
                Outcome::Measured(m) => Some(headline(scenario, m).0),
                Outcome::Skipped(_) => None,
            });
        for figure in group {
            match &figure.outcome {
                Outcome::Skipped(why) => writeln!(
                    out,
                    "{:<6} {:>7} {:<12} {:<6} skipped: {why}",
                    scenario,
                    size,
                    figure.system_name(),
                    figure.client_name()
                )?,
                Outcome::Measured(m) => {
                    let (value, unit) = headline(scenario, m);
                    let ratio = match (tandem, figure.system) {
                        (
                            _,
                            Some(s @ (System::Tandem | System::TandemTmpfs | System::TandemAuth)),
                        ) if scenario == "s1" && figure.client == ClientKind::Tandem => {
                            floor.get(&size).map_or(String::new(), |f| {
                                format!("{}/floor {:.2}×", s.name(), value / f)
                            })
                        }
                        (Some(t), Some(s)) if s != System::Tandem => {
                            format!("tandem/{} {:.3}×", s.name(), t / value)
                        }
                        _ => String::new(),
                    };
                    let opt =
                        |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.0}", ms(d)));
                    let details: Vec<String> =
                        m.extra.iter().map(|(n, v)| format!("{n}={v:.3}")).collect();
                    writeln!(
                        out,
                        "{:<6} {:>7} {:<12} {:<6} {:>12.3} {:<14} {:>10.0} {:>10} {:>10} {:>11}  {} {}",
                        scenario,
                        size,
                        figure.system_name(),
                        figure.client_name(),
                        value,
                        unit,
                        ms(m.wall),
                        opt(m.client_cpu),
                        opt(m.server_cpu),
                        m.server_peak_rss_kib
                            .map_or("-".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                        ratio,
                        details.join(" "),
                    )?;
                }
            }
        }
    }
    Ok(())
}
