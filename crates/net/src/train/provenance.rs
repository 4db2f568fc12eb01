//! The `training.*` record a trained model file keeps: what data, which method, how well.

use std::collections::BTreeMap;

use super::{Dataset, Trained};

/// Where a trained model came from, stored as `training.*` string metadata in the model file
/// (docs/FORMAT.md). `run` reads `training.inputs` and `training.targets` back to pick CSV
/// columns by name.
///
/// Column names are joined with `,` in the metadata, so a name holding a comma cannot be read
/// back by name.
///
/// ```
/// use modeltool_net::train::{train, Dataset, Provenance, TrainConfig};
/// let data = Dataset::from_csv_reader("height_cm,weight_kg\n170,60\n160,50\n".as_bytes(), "hw.csv", &[])?;
/// let trained = train(&data, &TrainConfig::linear(), &mut |_, _| {})?;
/// let record = Provenance::new("hw.csv", "ab12", &data, &trained);
/// let metadata = record.to_metadata();
/// assert_eq!(metadata["training.inputs"], "height_cm");
/// assert_eq!(metadata["training.method"], "least squares");
/// assert_eq!(Provenance::columns(&metadata), (vec!["height_cm".to_owned()], vec!["weight_kg".to_owned()]));
/// # Ok::<(), modeltool_net::NetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Provenance {
    /// The data file's name (without its folder).
    pub data: String,
    /// The sha256 of the data file's bytes, lowercase hex.
    pub data_sha256: String,
    /// Rows trained on.
    pub rows: usize,
    /// Input column names, in the order the network takes them.
    pub inputs: Vec<String>,
    /// Target column names, in the order the network gives them.
    pub targets: Vec<String>,
    /// The method, as [`Method`](super::Method) displays it.
    pub method: String,
    /// Epochs trained (0 for least squares).
    pub epochs: usize,
    /// Mean squared error of the saved network on the data.
    pub final_loss: f64,
}

/// Metadata keys of the record.
pub mod keys {
    /// The data file's name.
    pub const DATA: &str = "training.data";
    /// The sha256 of the data file.
    pub const DATA_SHA256: &str = "training.data_sha256";
    /// Rows trained on.
    pub const ROWS: &str = "training.rows";
    /// Input column names, comma separated.
    pub const INPUTS: &str = "training.inputs";
    /// Target column names, comma separated.
    pub const TARGETS: &str = "training.targets";
    /// The method.
    pub const METHOD: &str = "training.method";
    /// Epochs trained.
    pub const EPOCHS: &str = "training.epochs";
    /// The final mean squared error.
    pub const FINAL_LOSS: &str = "training.final_loss";
}

impl Provenance {
    /// The record of `trained`, fitted to `data` read from the file `data_name` whose bytes
    /// have the sha256 `data_sha256`.
    pub fn new(
        data_name: &str,
        data_sha256: &str,
        data: &Dataset,
        trained: &Trained,
    ) -> Provenance {
        Provenance {
            data: data_name.to_owned(),
            data_sha256: data_sha256.to_owned(),
            rows: data.rows(),
            inputs: data.input_names().to_vec(),
            targets: data.target_names().to_vec(),
            method: trained.method.to_string(),
            epochs: trained.method.epochs(),
            final_loss: trained.final_loss,
        }
    }

    /// The record of `trained`, fitted to `data` read from the file at `path`: its name
    /// (without the folder) and the sha256 of its bytes, read again now. Errors name the path.
    pub fn for_file(
        path: &std::path::Path,
        data: &Dataset,
        trained: &Trained,
    ) -> Result<Provenance, crate::NetError> {
        let bytes = std::fs::read(path).map_err(|source| crate::NetError::Io {
            source_name: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Provenance::new(
            &name,
            &modeltool_format::sha256_hex(&bytes),
            data,
            trained,
        ))
    }

    /// The `training.*` metadata pairs.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        [
            (keys::DATA, self.data.clone()),
            (keys::DATA_SHA256, self.data_sha256.clone()),
            (keys::ROWS, self.rows.to_string()),
            (keys::INPUTS, self.inputs.join(",")),
            (keys::TARGETS, self.targets.join(",")),
            (keys::METHOD, self.method.clone()),
            (keys::EPOCHS, self.epochs.to_string()),
            (keys::FINAL_LOSS, self.final_loss.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The input and target column names a model's metadata records (empty when it records
    /// none).
    pub fn columns(metadata: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
        let list = |key: &str| {
            metadata
                .get(key)
                .filter(|v| !v.is_empty())
                .map(|v| v.split(',').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        (list(keys::INPUTS), list(keys::TARGETS))
    }
}
