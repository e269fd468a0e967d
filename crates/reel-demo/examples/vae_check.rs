use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use reel_demo::world::*;
use reel_demo::rng::Rng;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &Device::Cpu).unwrap() };
    let vae = reel_models::wan::WanVae::new(&reel_demo::model::vae_config(vec![0.0; 8], vec![1.0; 8]), vb).unwrap();
    let mut rng = Rng::new(99);
    let mut total = 0.0;
    for _ in 0..4 {
        let scene = Scene::random(&mut rng, Split::Train);
        let frames = scene.render();
        let data: Vec<f32> = (0..3).flat_map(|c| frames.iter().take(5).flat_map(move |f| f.iter().skip(c).step_by(3).map(|v| *v as f32 / 127.5 - 1.0)).collect::<Vec<_>>()).collect();
        let x = Tensor::from_vec(data, (1, 3, 5, 64, 64), &Device::Cpu).unwrap();
        let post = vae.encode(&x, None).unwrap();
        let y = vae.decode(&post.mean, None).unwrap();
        let mse = (y.clone() - &x).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
        let psnr = 10.0 * (4.0f32 / mse).log10();
        println!("psnr {psnr:.2} dB, out mean {:.3}, in mean {:.3}, latent std {:.3}", y.mean_all().unwrap().to_scalar::<f32>().unwrap(), x.mean_all().unwrap().to_scalar::<f32>().unwrap(), post.mean.flatten_all().unwrap().var(0).unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap());
        total += psnr;
    }
    println!("mean psnr {:.2}", total / 4.0);
}
