//! Interleaved runs and their medians: the machine is shared and noisy, so
//! every arm runs in each block (in a rotating order) and figures are
//! medians of block medians; a ratio is the median of the per-block ratios
//! to the baseline arm of the same run.

/// The median (upper middle) of `values`; NaN for none.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The `p` quantile (0..=1) of `values`, nearest rank.
pub fn quantile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One arm's block figures (one per block).
#[derive(Debug, Clone, Default)]
pub struct Blocks(pub Vec<f64>);

impl Blocks {
    pub fn median(&self) -> f64 {
        median(&self.0)
    }

    /// Median over blocks of `self / baseline` (block by block).
    pub fn ratio_to(&self, baseline: &Blocks) -> f64 {
        let ratios: Vec<f64> = self.0.iter().zip(&baseline.0).map(|(a, b)| a / b).collect();
        median(&ratios)
    }

    /// Median over blocks of `(self - base) / (other - base)`: how this
    /// arm's overhead over `base` compares with `other`'s.
    pub fn overhead_ratio(&self, other: &Blocks, base: &Blocks) -> f64 {
        let ratios: Vec<f64> = (0..self.0.len().min(other.0.len()).min(base.0.len()))
            .map(|i| (self.0[i] - base.0[i]) / (other.0[i] - base.0[i]))
            .collect();
        median(&ratios)
    }
}

/// Runs every arm `reps` times in each of `blocks` blocks, the arms' order
/// rotating from block to block; each arm's block figure is the median of
/// its `reps` samples. `run(arm)` returns one sample.
pub fn interleave(
    arms: usize,
    blocks: usize,
    reps: usize,
    mut run: impl FnMut(usize) -> anyhow::Result<f64>,
) -> anyhow::Result<Vec<Blocks>> {
    let mut out = vec![Blocks::default(); arms];
    for block in 0..blocks {
        let mut samples = vec![Vec::with_capacity(reps); arms];
        // Within a block the arms alternate run by run (A B C A B C ...).
        for _ in 0..reps {
            for k in 0..arms {
                let arm = (k + block) % arms;
                samples[arm].push(run(arm)?);
            }
        }
        for (arm, s) in samples.iter().enumerate() {
            out[arm].0.push(median(s));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        let a = Blocks(vec![2.0, 4.0, 6.0]);
        let b = Blocks(vec![1.0, 2.0, 2.0]);
        assert_eq!(a.ratio_to(&b), 2.0);
        let base = Blocks(vec![1.0, 1.0, 1.0]);
        assert_eq!(Blocks(vec![3.0, 3.0, 3.0]).overhead_ratio(&b, &base), 2.0);
        let runs = interleave(2, 5, 3, |arm| Ok(arm as f64)).unwrap();
        assert_eq!(runs[1].0, vec![1.0; 5]);
    }
}
