//! What the network is trained to do, and how its output is scored.

use ndarray::{Array2, ArrayView2};

use backprop_layers::{argmax_rows, CrossEntropy, LayerError, Loss, Mse};

/// The two tasks of the lesson.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Ten logits, cross-entropy against the class.
    Classification,
    /// One output, mean squared error against the digit's value (the lesson's first model);
    /// a prediction counts as correct when it rounds to the label.
    Regression,
}

impl Task {
    /// Outputs the network must have.
    pub fn outputs(&self, classes: usize) -> usize {
        match self {
            Task::Classification => classes,
            Task::Regression => 1,
        }
    }

    pub fn loss_name(&self) -> &'static str {
        match self {
            Task::Classification => "ce",
            Task::Regression => "mse",
        }
    }
}

/// The loss of a task with its target buffers, reused batch after batch.
#[derive(Debug)]
pub struct Objective {
    task: Task,
    cross_entropy: CrossEntropy<f32>,
    mse: Mse<f32>,
    classes: Vec<usize>,
    values: Vec<f32>,
}

impl Objective {
    pub fn new(task: Task) -> Self {
        Objective {
            task,
            cross_entropy: CrossEntropy::new(),
            mse: Mse::new(),
            classes: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The loss of `output` against `labels` (kept for [`Objective::grad`]).
    pub fn loss(&mut self, output: ArrayView2<f32>, labels: &[u8]) -> Result<f32, LayerError> {
        match self.task {
            Task::Classification => {
                self.classes.clear();
                self.classes.extend(labels.iter().map(|&l| l as usize));
                self.cross_entropy.forward(output, &self.classes)
            }
            Task::Regression => {
                self.values.clear();
                self.values.extend(labels.iter().map(|&l| l as f32));
                self.mse.forward(output, &self.values)
            }
        }
    }

    /// `∂loss/∂output` of the last [`Objective::loss`].
    pub fn grad(&mut self) -> Result<Array2<f32>, LayerError> {
        match self.task {
            Task::Classification => self.cross_entropy.backward(),
            Task::Regression => self.mse.backward(),
        }
    }

    /// The predicted class of each row.
    pub fn predictions(&self, output: ArrayView2<f32>) -> Vec<usize> {
        match self.task {
            Task::Classification => argmax_rows(output),
            Task::Regression => output
                .column(0)
                .iter()
                .map(|&v| v.round().clamp(0.0, 9.0) as usize)
                .collect(),
        }
    }
}
