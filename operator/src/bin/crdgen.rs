//! `crdgen`: prints the ShardedCluster CRD, or with `--write` writes it to
//! `crds/` and the Helm chart's `crds/` (both paths relative to the workspace
//! root, found from this crate's manifest directory).

use std::path::PathBuf;

use shardline_operator::crd::{crd_yaml, CHART_CRD_PATH, CRD_PATH};

fn main() -> anyhow::Result<()> {
    let yaml = crd_yaml()?;
    if std::env::args().any(|a| a == "--write") {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        for rel in [CRD_PATH, CHART_CRD_PATH] {
            let path = root.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, &yaml)?;
            eprintln!("wrote {rel}");
        }
    } else {
        print!("{yaml}");
    }
    Ok(())
}
