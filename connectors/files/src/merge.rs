//! Concatenating per-partition outputs in partition order.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use mora_domain::ids::Channel;

/// Concatenates `parts[i]/actions/<channel>.jsonl`, `dead_letters.jsonl` and `audit.jsonl` into the same names
/// under `out`, in the order of `parts`, then removes the part directories.
pub fn merge_partitions(out: &Path, parts: &[PathBuf]) -> io::Result<()> {
    fs::create_dir_all(out.join("actions"))?;
    let mut names: Vec<PathBuf> = Channel::ALL
        .iter()
        .map(|c| Path::new("actions").join(format!("{c}.jsonl")))
        .collect();
    names.push("dead_letters.jsonl".into());
    names.push("audit.jsonl".into());
    for name in names {
        let sources: Vec<PathBuf> = parts
            .iter()
            .map(|p| p.join(&name))
            .filter(|p| p.exists())
            .collect();
        if sources.is_empty() {
            continue;
        }
        let mut w = BufWriter::new(File::create(out.join(&name))?);
        for s in sources {
            io::copy(&mut File::open(&s)?, &mut w)?;
        }
        w.flush()?;
    }
    for p in parts {
        fs::remove_dir_all(p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenates_in_partition_order_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let parts: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("p{i}"))).collect();
        for (i, p) in parts.iter().enumerate() {
            fs::create_dir_all(p.join("actions")).unwrap();
            fs::write(p.join("actions/sms.jsonl"), format!("line-from-{i}\n")).unwrap();
        }
        merge_partitions(dir.path(), &parts).unwrap();
        let merged = fs::read_to_string(dir.path().join("actions/sms.jsonl")).unwrap();
        assert_eq!(merged, "line-from-0\nline-from-1\n");
        assert!(!parts[0].exists());
    }
}
