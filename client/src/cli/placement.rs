//! `shardline placement`: compares a consistent-hash ring with virtual nodes
//! and rendezvous hashing on sample keys, offline.
//!
//! Prints each node's share under both strategies, the standard deviation
//! of the shares, and the fraction of keys that move when a node joins and
//! when one leaves, next to the ideal (the least any scheme can move). The
//! numbers come from [`shardline_proto::placement::report_weighted`];
//! `--output json` prints that report as is.

use shardline_proto::placement::{report_weighted, PlacementReport, StrategyReport};

/// Nodes used when neither `--nodes` nor `--weights` is given.
const DEFAULT_NODES: usize = 10;

#[derive(clap::Args, Debug, Clone)]
pub struct PlacementArgs {
    /// Number of nodes (default 10, or the number of --weights).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Ring points per node (per unit of weight).
    #[arg(long, default_value_t = 150)]
    pub vnodes: u32,
    /// Number of sample keys placed.
    #[arg(long, default_value_t = 100_000)]
    pub keys: usize,
    /// Comma-separated weight of each node, e.g. `1,1,2` (default: all 1).
    #[arg(long, value_delimiter = ',')]
    pub weights: Option<Vec<f64>>,
}

impl PlacementArgs {
    /// The weight of each node, checking `--nodes` against `--weights`.
    fn node_weights(&self) -> anyhow::Result<Vec<f64>> {
        match (&self.weights, self.nodes) {
            (Some(w), Some(n)) if w.len() != n => {
                anyhow::bail!("{} weights given for {n} nodes", w.len())
            }
            (Some(w), _) => Ok(w.clone()),
            (None, n) => Ok(vec![1.0; n.unwrap_or(DEFAULT_NODES)]),
        }
    }
}

/// Runs the comparison and prints a table, or the report as JSON.
pub fn run(args: &PlacementArgs, json: bool) -> anyhow::Result<()> {
    let report = report_weighted(&args.node_weights()?, args.vnodes, args.keys)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

fn pct(f: f64) -> String {
    format!("{:.2}%", f * 100.0)
}

/// The human-readable report.
fn table(r: &PlacementReport) -> String {
    let [ring, rdv]: [&StrategyReport; 2] = [&r.strategies[0], &r.strategies[1]];
    let mut out = format!(
        "{} keys on {} nodes; the ring has {} virtual nodes per unit of weight\n\n",
        r.keys, r.nodes, r.vnodes
    );
    out += &format!(
        "{:>6} {:>7} {:>9} {:>9} {:>11}\n",
        "node", "weight", "ideal", "ring", "rendezvous"
    );
    for (i, ideal) in r.ideal_shares.iter().enumerate() {
        out += &format!(
            "{i:>6} {:>7.2} {:>9} {:>9} {:>11}\n",
            r.weights[i],
            pct(*ideal),
            pct(ring.shares[i]),
            pct(rdv.shares[i])
        );
    }
    out += "\n";
    let row = |label: &str, ring: String, rdv: String, ideal: String| {
        format!("{label:<24} {ring:>9} {rdv:>11}   {ideal}\n")
    };
    out += &row(
        "share std dev",
        pct(ring.std_dev),
        pct(rdv.std_dev),
        "ideal 0.00%".into(),
    );
    out += &row(
        "max share / ideal",
        format!("{:.3}", ring.max_over_ideal),
        format!("{:.3}", rdv.max_over_ideal),
        "ideal 1.000".into(),
    );
    out += &row(
        &format!("moved on join (+node {})", r.nodes),
        pct(ring.moved_on_join),
        pct(rdv.moved_on_join),
        format!("ideal {}", pct(r.ideal_moved_on_join)),
    );
    if let (Some(a), Some(b), Some(ideal)) = (
        ring.moved_on_leave,
        rdv.moved_on_leave,
        r.ideal_moved_on_leave,
    ) {
        out += &row(
            &format!("moved on leave (-node {})", r.nodes - 1),
            pct(a),
            pct(b),
            format!("ideal {}", pct(ideal)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: Option<usize>, weights: Option<Vec<f64>>) -> PlacementArgs {
        PlacementArgs {
            nodes,
            vnodes: 50,
            keys: 5_000,
            weights,
        }
    }

    #[test]
    fn nodes_default_to_ten_or_follow_the_weights() {
        assert_eq!(
            args(None, None).node_weights().unwrap().len(),
            DEFAULT_NODES
        );
        assert_eq!(
            args(None, Some(vec![1.0, 2.0])).node_weights().unwrap(),
            vec![1.0, 2.0]
        );
        assert!(args(Some(3), Some(vec![1.0])).node_weights().is_err());
    }

    #[test]
    fn table_lists_every_node_and_the_movement_rows() {
        let r = report_weighted(&[1.0, 1.0, 2.0], 50, 5_000).unwrap();
        let t = table(&r);
        assert_eq!(
            t.lines()
                .filter(|l| l.starts_with(' ') && l.trim_start().starts_with(char::is_numeric))
                .count(),
            3
        );
        assert!(t.contains("moved on join (+node 3)"));
        assert!(t.contains("moved on leave (-node 2)"));
        assert!(t.contains("ideal 20.00%"), "{t}");
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["strategies"][1]["strategy"], "rendezvous");
    }
}
