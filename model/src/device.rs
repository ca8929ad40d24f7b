//! Device and dtype selection for loading. Parsing a user's choice is an option rule: see
//! [`crate::options`].

use candle_core::{DType, Device};

use crate::error::{Error, Result};

/// Which compute dtype to load the transformer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypeChoice {
    /// bf16 on GPUs, f32 on CPU (candle has no fast bf16 CPU kernels).
    #[default]
    Auto,
    /// float32.
    F32,
    /// bfloat16 (the official inference dtype).
    BF16,
    /// float16: always refused with [`Error::F16Unsupported`] (OmniGen produces black images in f16).
    F16,
}

impl DTypeChoice {
    /// The concrete dtype on `device`.
    pub fn resolve(self, device: &Device) -> Result<DType> {
        match self {
            Self::Auto if device.is_cpu() => Ok(DType::F32),
            Self::Auto | Self::BF16 => Ok(DType::BF16),
            Self::F32 => Ok(DType::F32),
            Self::F16 => Err(Error::F16Unsupported),
        }
    }
}

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 when built with `cuda` and one is present, else Metal (with `metal`), else CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// A CUDA device (needs the `cuda` feature).
    Cuda(usize),
    /// A Metal device (needs the `metal` feature).
    Metal(usize),
}

impl DeviceChoice {
    /// Opens the device.
    pub fn open(self) -> Result<Device> {
        let fail = |device: String, e: candle_core::Error| Error::Device {
            device,
            message: e.to_string(),
        };
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => Device::new_cuda(n).map_err(|e| fail(format!("cuda:{n}"), e)),
            Self::Metal(n) => Device::new_metal(n).map_err(|e| fail(format!("metal:{n}"), e)),
            Self::Auto => {
                if candle_core::utils::cuda_is_available() {
                    if let Ok(d) = Device::new_cuda(0) {
                        return Ok(d);
                    }
                }
                if candle_core::utils::metal_is_available() {
                    if let Ok(d) = Device::new_metal(0) {
                        return Ok(d);
                    }
                }
                Ok(Device::Cpu)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_dtypes() -> Result<()> {
        assert_eq!(DeviceChoice::parse("cuda:1")?, DeviceChoice::Cuda(1));
        assert_eq!(DeviceChoice::parse("CUDA")?, DeviceChoice::Cuda(0));
        assert_eq!(DeviceChoice::parse("cpu")?, DeviceChoice::Cpu);
        assert!(DeviceChoice::parse("tpu").is_err());
        assert!(DeviceChoice::parse("cuda:x").is_err());
        assert_eq!(DTypeChoice::parse("bfloat16")?, DTypeChoice::BF16);
        assert_eq!(DTypeChoice::Auto.resolve(&Device::Cpu)?, DType::F32);
        assert!(matches!(
            DTypeChoice::F16.resolve(&Device::Cpu),
            Err(Error::F16Unsupported)
        ));
        Ok(())
    }
}
