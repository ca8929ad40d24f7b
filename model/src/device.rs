//! Device and dtype selection for loading.

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::options::OptionError;

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
    /// Parses `auto`, `f32`/`float32`/`fp32`, `bf16`/`bfloat16`, `f16`/`float16`/`fp16`.
    pub fn parse(s: &str) -> std::result::Result<Self, OptionError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "default" => Self::Auto,
            "f32" | "float32" | "fp32" => Self::F32,
            "bf16" | "bfloat16" => Self::BF16,
            "f16" | "float16" | "fp16" | "half" => Self::F16,
            other => return Err(OptionError::UnknownDType(other.to_string())),
        })
    }

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
    /// Parses `auto`, `cpu`, `cuda`, `cuda:N`, `metal`, `metal:N`.
    pub fn parse(s: &str) -> std::result::Result<Self, OptionError> {
        let s = s.trim().to_ascii_lowercase();
        let index = |rest: &str| -> std::result::Result<usize, OptionError> {
            if rest.is_empty() {
                return Ok(0);
            }
            rest.strip_prefix(':')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| OptionError::UnknownDevice(s.clone()))
        };
        if s == "auto" {
            Ok(Self::Auto)
        } else if s == "cpu" {
            Ok(Self::Cpu)
        } else if let Some(rest) = s.strip_prefix("cuda") {
            Ok(Self::Cuda(index(rest)?))
        } else if let Some(rest) = s.strip_prefix("metal") {
            Ok(Self::Metal(index(rest)?))
        } else {
            Err(OptionError::UnknownDevice(s))
        }
    }

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
