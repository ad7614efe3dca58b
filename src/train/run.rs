//! What a run is, as a value: its id, the model, the data and every training setting. The
//! `wgtrain` binary records it in checkpoints and reports, so `eval`, `predict` and `--resume`
//! find the run's data and settings again, and logs of several runs can be told apart.

use std::collections::BTreeMap;

use serde_json::Value;

use super::TrainConfig;
use crate::data::DataSpec;

/// A training run's full description.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunSettings {
    /// The run's id ([`new_run_id`]); a resumed run keeps it.
    pub run_id: String,
    /// The model as asked for: a zoo name or a model file.
    pub model: String,
    /// The data and the part of it used.
    pub data: DataSpec,
    /// The trainer's settings (optimizer, schedule, batch, augmentation, seed, ...).
    pub config: TrainConfig,
    /// Label smoothing of the cross-entropy.
    #[serde(default)]
    pub label_smoothing: f32,
    /// The dropout rate every dropout layer was set to, if overridden.
    #[serde(default)]
    pub dropout: Option<f32>,
    /// Patterns of the parameters kept fixed (`Model::freeze`).
    #[serde(default)]
    pub freeze: Vec<String>,
    /// The weights file the run started from, if any (`--init-from`).
    #[serde(default)]
    pub init_from: Option<std::path::PathBuf>,
    /// Whether the last linear layer was initialised afresh instead (`--reset-head`).
    #[serde(default)]
    pub reset_head: bool,
    /// Data-parallel replicas that trained it (0 or 1: one), for the record.
    #[serde(default)]
    pub replicas: usize,
    /// Whether batch norm took its statistics over every replica (`--sync-bn`).
    #[serde(default)]
    pub sync_bn: bool,
}

impl RunSettings {
    /// Every setting that differs between `self` (recorded) and `other`, as `path: new
    /// (recorded: old)` lines with dotted paths (`config.optimizer.lr: 0.1 (recorded: 0.001)`),
    /// among the paths `keep` accepts.
    pub fn differences(&self, other: &RunSettings, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let flat = |s: &RunSettings| {
            let mut out = BTreeMap::new();
            flatten("", &serde_json::to_value(s).unwrap_or(Value::Null), &mut out);
            out
        };
        let (a, b) = (flat(self), flat(other));
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter(|k| keep(k))
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| {
                let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "none".into());
                format!("{k}: {} (recorded: {})", show(b.get(k)), show(a.get(k)))
            })
            .collect()
    }
}

/// Leaves of a JSON value by dotted path, as text.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&p, x, out);
            }
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(|x| x.to_string()).collect();
            out.insert(prefix.to_string(), format!("[{}]", parts.join(", ")));
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        Value::Number(n) if n.is_f64() => {
            // Settings are f32: show 0.1, not the f64 0.10000000149011612 it widens to.
            let f = n.as_f64().unwrap_or(f64::NAN);
            let text = if f64::from(f as f32) == f { (f as f32).to_string() } else { f.to_string() };
            out.insert(prefix.to_string(), text);
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// A new run id: the UTC start time and 4 hex digits, `20261130-142501-3fa2`.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    // Distinct for runs started in the same second: the clock's nanoseconds and the process.
    let mix = (now.subsec_nanos() as u64 ^ (std::process::id() as u64).rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{y:04}{mo:02}{d:02}-{:02}{:02}{:02}-{:04x}", t / 3600, t / 60 % 60, t % 60, mix >> 48)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
    }

    #[test]
    fn run_ids_differ_and_sort_by_time() {
        let (a, b) = (new_run_id(), new_run_id());
        assert_eq!(a.len(), "20261130-142501-3fa2".len());
        assert!(a[..15] <= b[..15]);
        assert_ne!(a, b);
    }

    #[test]
    fn differences_name_the_changed_settings() {
        let a = RunSettings {
            run_id: "x".into(),
            model: "default".into(),
            data: DataSpec::shapes(),
            config: TrainConfig::default(),
            label_smoothing: 0.0,
            dropout: None,
            freeze: Vec::new(),
            init_from: None,
            reset_head: false,
            replicas: 1,
            sync_bn: false,
        };
        let mut b = a.clone();
        b.config.optimizer.lr = 0.5;
        b.config.epochs = 9;
        b.run_id = "y".into();
        let d = a.differences(&b, |k| k != "run_id" && k != "config.epochs");
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with("config.optimizer.lr: 0.5 (recorded: 0.001"), "{d:?}");
        assert!(a.differences(&a.clone(), |_| true).is_empty());
    }
}
