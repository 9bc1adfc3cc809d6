//! Metrics averaged over samples, weighted by batch size.
//!
//! fastai's notebook averages per-batch metrics over batches, which is wrong when the last
//! batch is smaller: each batch's mean is weighted by its number of samples here.

use backprop_data::{DataLoader, Normalization, Order, Subset};
use backprop_layers::Module;
use backprop_model::Sequential;

use crate::engine::Network;
use crate::error::TrainError;
use crate::task::{Objective, Task};

/// A running mean of per-batch means, weighted by batch size.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Mean {
    sum: f64,
    count: usize,
}

impl Mean {
    /// Adds a batch of `count` samples whose mean is `batch_mean`.
    pub fn add(&mut self, batch_mean: f64, count: usize) {
        self.sum += batch_mean * count as f64;
        self.count += count;
    }

    pub fn value(&self) -> f64 {
        self.sum / self.count.max(1) as f64
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

/// Loss, accuracy and confusion matrix of a model on a split.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub samples: usize,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

/// Evaluates `model` on all of `subset`, in order, in batches of `batch_size` (through the
/// engine's forward, which keeps no copy of the batch, when the model is one it runs).
pub fn evaluate(
    model: &mut Sequential<f32>,
    subset: &Subset,
    normalization: &Normalization,
    task: Task,
    batch_size: usize,
) -> Result<Evaluation, TrainError> {
    let classes = 10;
    let mut loader = DataLoader::new(subset, normalization, batch_size, Order::Sequential)?;
    let mut objective = Objective::new(task);
    let (mut loss, mut correct) = (Mean::default(), 0usize);
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut network = Network::plan(model);
    let mut epoch = loader.epoch(0);
    while let Some(batch) = epoch.next_batch() {
        let output = match &mut network {
            Some(network) => network
                .forward(model, batch.x, rayon::current_num_threads())?
                .to_owned(),
            None => model.forward(batch.x)?,
        };
        loss.add(objective.loss(output.view(), batch.y)? as f64, batch.y.len());
        for (&label, predicted) in batch.y.iter().zip(objective.predictions(output.view())) {
            confusion[label as usize][predicted] += 1;
            correct += (label as usize == predicted) as usize;
        }
    }
    Ok(Evaluation {
        loss: loss.value(),
        accuracy: correct as f64 / loss.count().max(1) as f64,
        samples: loss.count(),
        confusion,
    })
}

#[cfg(test)]
mod tests {
    use super::Mean;

    #[test]
    fn weighted_by_batch_size() {
        // Batches of 64 with mean 1.0 and a last batch of 16 with mean 0.0: 64/80, not 1/2.
        let mut m = Mean::default();
        m.add(1.0, 64);
        m.add(0.0, 16);
        assert_eq!(m.value(), 0.8);
        assert_eq!(m.count(), 80);
    }
}
