//! The viewer's GPU side: the WGSL pipeline installed once in egui_wgpu's callback resources, the film
//! and heatmap textures (uploaded when their keys change), and the paint callback that writes the
//! window/level uniforms each frame.

use std::sync::Arc;

use eframe::egui_wgpu::{self, wgpu};

use super::film::{DEVICE_MAX_SIDE, Heatmap, MAX_TEXTURE_SIDE};
use crate::imaging::GreyImage;

/// GPU resources of the viewer, kept in egui_wgpu's callback resources.
struct GpuViewer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: wgpu::Buffer,
    sampler: wgpu::Sampler,
    film_key: Option<u64>,
    heat_key: Option<u64>,
    film: Option<wgpu::Texture>,
    heat: Option<wgpu::Texture>,
    bind_group: Option<wgpu::BindGroup>,
    srgb: bool,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Uniforms {
    pub(super) image_origin: [f32; 2],
    pub(super) image_size: [f32; 2],
    pub(super) scale: f32,
    pub(super) center: f32,
    pub(super) width: f32,
    pub(super) func: u32,
    pub(super) invert: u32,
    pub(super) srgb: u32,
    pub(super) heat_opacity: f32,
    pub(super) pad0: f32,
    pub(super) pad1: [f32; 4],
}

/// Creates the viewer's pipeline in the renderer's callback resources (call once at start-up).
pub fn install(render_state: &egui_wgpu::RenderState) {
    let device = &render_state.device;
    DEVICE_MAX_SIDE.store(
        device
            .limits()
            .max_texture_dimension_2d
            .clamp(256, MAX_TEXTURE_SIDE),
        std::sync::atomic::Ordering::Relaxed,
    );
    let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("sacro viewer"),
        source: wgpu::ShaderSource::Wgsl(include_str!("viewer.wgsl").into()),
    });
    let texture_entry = |binding, filterable| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    };
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("sacro viewer"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            texture_entry(1, false),
            texture_entry(2, true),
            wgpu::BindGroupLayoutEntry {
                binding: 3,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                count: None,
            },
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("sacro viewer"),
        bind_group_layouts: &[Some(&layout)],
        ..Default::default()
    });
    let format = render_state.target_format;
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("sacro viewer"),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &shader,
            entry_point: Some("vs_main"),
            compilation_options: Default::default(),
            buffers: &[],
        },
        fragment: Some(wgpu::FragmentState {
            module: &shader,
            entry_point: Some("fs_main"),
            compilation_options: Default::default(),
            targets: &[Some(format.into())],
        }),
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        multiview_mask: None,
        cache: None,
    });
    let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("sacro viewer uniforms"),
        size: std::mem::size_of::<Uniforms>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
        label: Some("sacro heatmap"),
        mag_filter: wgpu::FilterMode::Linear,
        min_filter: wgpu::FilterMode::Linear,
        ..Default::default()
    });
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(GpuViewer {
            pipeline,
            layout,
            uniforms,
            sampler,
            film_key: None,
            heat_key: None,
            film: None,
            heat: None,
            bind_group: None,
            srgb: format.is_srgb(),
        });
}

fn texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    (width, height): (u32, u32),
    format: wgpu::TextureFormat,
    bytes: &[u8],
    bytes_per_pixel: u32,
) -> wgpu::Texture {
    let size = wgpu::Extent3d {
        width,
        height,
        depth_or_array_layers: 1,
    };
    let tex = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("sacro viewer texture"),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: &tex,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(width * bytes_per_pixel),
            rows_per_image: Some(height),
        },
        size,
    );
    tex
}

pub(super) struct Paint {
    pub(super) film: Arc<GreyImage>,
    pub(super) film_key: u64,
    pub(super) heat: Option<Heatmap>,
    pub(super) uniforms: Uniforms,
}

impl egui_wgpu::CallbackTrait for Paint {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(gpu) = resources.get_mut::<GpuViewer>() else {
            return Vec::new();
        };
        let mut rebind = gpu.bind_group.is_none();
        if gpu.film_key != Some(self.film_key) {
            let f = &self.film;
            gpu.film = Some(texture(
                device,
                queue,
                (f.width, f.height),
                wgpu::TextureFormat::R32Float,
                bytemuck::cast_slice(&f.pixels),
                4,
            ));
            gpu.film_key = Some(self.film_key);
            rebind = true;
        }
        let heat_key = self.heat.as_ref().map(|h| h.key);
        if gpu.heat.is_none() || (heat_key.is_some() && gpu.heat_key != heat_key) {
            gpu.heat = Some(match &self.heat {
                Some(h) => texture(
                    device,
                    queue,
                    (h.width, h.height),
                    wgpu::TextureFormat::Rgba8Unorm,
                    &h.rgba,
                    4,
                ),
                None => texture(
                    device,
                    queue,
                    (1, 1),
                    wgpu::TextureFormat::Rgba8Unorm,
                    &[0, 0, 0, 0],
                    4,
                ),
            });
            gpu.heat_key = heat_key;
            rebind = true;
        }
        if rebind && let (Some(film), Some(heat)) = (&gpu.film, &gpu.heat) {
            let fv = film.create_view(&wgpu::TextureViewDescriptor::default());
            let hv = heat.create_view(&wgpu::TextureViewDescriptor::default());
            gpu.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("sacro viewer"),
                layout: &gpu.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: gpu.uniforms.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(&fv),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::TextureView(&hv),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::Sampler(&gpu.sampler),
                    },
                ],
            }));
        }
        let ppp = screen.pixels_per_point;
        let mut u = self.uniforms;
        u.image_origin = [u.image_origin[0] * ppp, u.image_origin[1] * ppp];
        u.scale *= ppp;
        u.srgb = u32::from(gpu.srgb);
        if self.heat.is_none() {
            u.heat_opacity = 0.0;
        }
        queue.write_buffer(&gpu.uniforms, 0, bytemuck::bytes_of(&u));
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(gpu) = resources.get::<GpuViewer>() else {
            return;
        };
        let Some(bind_group) = &gpu.bind_group else {
            return;
        };
        pass.set_pipeline(&gpu.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
}
