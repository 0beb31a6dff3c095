//! The radiograph viewer: the film's modality values are uploaded once as a 32-bit float texture, and
//! window/level, inversion and the heatmap overlay are applied in a WGSL fragment shader through an
//! `egui_wgpu` paint callback, so dragging the window costs one uniform write per frame. Zoom about the
//! cursor, pan, fit and 1:1, a crop-rectangle tool, and a pixel readout under the cursor.

use std::sync::Arc;

use eframe::egui_wgpu::{self, wgpu};
use egui::{Color32, PointerButton, Pos2, Rect, Sense, Stroke, Vec2};

use crate::imaging::voi::{NamedPreset, Voi, VoiFunction, Window};
use crate::imaging::{GreyImage, Radiograph};
use crate::session::CropRect;

/// The largest texture side uploaded; larger films are shown downsampled (the readout still reads the
/// original values).
pub const MAX_TEXTURE_SIDE: u32 = 8192;

/// The device's limit on texture sides (set when the pipeline is installed; some GPUs allow only 2048 or
/// 4096), capped at [`MAX_TEXTURE_SIDE`].
static DEVICE_MAX_SIDE: std::sync::atomic::AtomicU32 =
    std::sync::atomic::AtomicU32::new(MAX_TEXTURE_SIDE);

/// A decoded film ready to show.
#[derive(Debug)]
pub struct Film {
    /// Unique key (changes whenever the pixels change).
    pub key: u64,
    /// The decoded radiograph.
    pub radiograph: Radiograph,
    /// What is uploaded: modality values, or VOI-applied values in [0, 1] when the film's VOI is a table.
    pub texture_values: Arc<GreyImage>,
    /// The texture holds values already windowed by the film's VOI LUT.
    pub table_voi: bool,
}

impl Film {
    /// Prepares a radiograph for display.
    pub fn new(key: u64, radiograph: Radiograph) -> Self {
        let (values, table_voi) = match radiograph.default_voi() {
            Voi::Table(_) => (radiograph.default_unit(), true),
            Voi::Window(_) => (radiograph.image.clone(), false),
        };
        let max_side = DEVICE_MAX_SIDE.load(std::sync::atomic::Ordering::Relaxed);
        let values = if values.width.max(values.height) > max_side {
            let f = f64::from(max_side) / f64::from(values.width.max(values.height));
            let (w, h) = (
                ((f64::from(values.width) * f).round() as u32).max(1),
                ((f64::from(values.height) * f).round() as u32).max(1),
            );
            values.resize(w, h).unwrap_or(values)
        } else {
            values
        };
        Self {
            key,
            radiograph,
            texture_values: Arc::new(values),
            table_voi,
        }
    }
}

/// An optional heatmap over the film: RGBA8 (colour and alpha), any size, stretched over the film.
#[derive(Debug, Clone)]
pub struct Heatmap {
    /// Unique key.
    pub key: u64,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// RGBA bytes.
    pub rgba: Arc<Vec<u8>>,
}

/// Window/level and view settings of the current film.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewState {
    /// Points per image pixel; `None` fits the film into the view.
    pub zoom: Option<f32>,
    /// Image point shown at the centre of the view.
    pub center: Pos2,
    /// Current window.
    pub window: Window,
    /// Inverted display.
    pub invert: bool,
    /// Name of the window's origin (preset, auto, manual).
    pub window_name: String,
    /// Heatmap opacity (0 = hidden).
    pub heat_opacity: f32,
}

impl ViewState {
    /// The film's default view: fitted, its first window preset (or auto), inverted if MONOCHROME1.
    pub fn for_film(film: &Film) -> Self {
        let r = &film.radiograph;
        let (window, name) = if film.table_voi {
            (
                Window {
                    center: 0.5,
                    width: 1.0,
                    function: VoiFunction::LinearExact,
                },
                "VOI LUT".to_string(),
            )
        } else {
            match r.default_voi() {
                Voi::Window(w) => (
                    w,
                    if r.presets.is_empty() {
                        "auto".into()
                    } else {
                        r.preset_names().first().cloned().unwrap_or_default()
                    },
                ),
                Voi::Table(_) => (r.auto_window(), "auto".into()),
            }
        };
        Self {
            zoom: None,
            center: Pos2::new(r.width() as f32 / 2.0, r.height() as f32 / 2.0),
            window,
            invert: r.inverted_by_default(),
            window_name: name,
            heat_opacity: 0.0,
        }
    }

    /// Applies preset `n` (1–5): 1–2 the film's presets (or auto), 3 auto, 4 full range, 5 contrast.
    pub fn apply_preset(&mut self, film: &Film, n: usize) -> Result<(), String> {
        if film.table_voi {
            return Err("this film is windowed by its VOI LUT".into());
        }
        let r = &film.radiograph;
        let preset = match n {
            1 | 2 if r.presets.len() >= n => NamedPreset::File(n - 1),
            1..=3 => NamedPreset::Auto,
            4 => NamedPreset::Full,
            _ => NamedPreset::Contrast,
        };
        let name = match &preset {
            NamedPreset::File(i) => r.preset_names().get(*i).cloned().unwrap_or_default(),
            NamedPreset::Auto => "auto".into(),
            NamedPreset::Full => "full range".into(),
            _ => "contrast".into(),
        };
        match r.voi_for(&preset).map_err(|e| e.to_string())? {
            Voi::Window(w) => {
                self.window = w;
                self.window_name = name;
                Ok(())
            }
            Voi::Table(_) => Err("preset is a table".into()),
        }
    }
}

/// What the viewer reports back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ViewerOutput {
    /// Pixel under the cursor: column, row, modality value.
    pub readout: Option<(u32, u32, f32)>,
    /// A crop rectangle was drawn.
    pub new_crop: Option<CropRect>,
    /// The view rectangle in points.
    pub rect: Option<Rect>,
}

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
struct Uniforms {
    image_origin: [f32; 2],
    image_size: [f32; 2],
    scale: f32,
    center: f32,
    width: f32,
    func: u32,
    invert: u32,
    srgb: u32,
    heat_opacity: f32,
    pad0: f32,
    pad1: [f32; 4],
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

struct Paint {
    film: Arc<GreyImage>,
    film_key: u64,
    heat: Option<Heatmap>,
    uniforms: Uniforms,
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

/// Shows `film` filling `ui`'s available space. `crop_tool`: a left drag draws a crop rectangle instead
/// of panning. `crop`: the case's crop rectangle, drawn as an outline.
pub fn show(
    ui: &mut egui::Ui,
    film: &Film,
    view: &mut ViewState,
    heat: Option<&Heatmap>,
    crop_tool: bool,
    crop: Option<CropRect>,
) -> ViewerOutput {
    let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    let r = &film.radiograph;
    let (w, h) = (r.width() as f32, r.height() as f32);
    let fit = (rect.width() / w).min(rect.height() / h) * 0.98;
    let mut scale = view.zoom.unwrap_or(fit).max(1e-3);
    if view.zoom.is_none() {
        view.center = Pos2::new(w / 2.0, h / 2.0);
    }
    let to_image = |p: Pos2, scale: f32, center: Pos2| center + (p - rect.center()) / scale;

    // Zoom about the cursor with the wheel.
    if response.hovered() {
        let scroll = ui.input(|i| i.smooth_scroll_delta.y + i.zoom_delta().ln() * 200.0);
        if scroll.abs() > 0.0
            && let Some(p) = response.hover_pos()
        {
            let before = to_image(p, scale, view.center);
            let new_scale = (scale * (scroll * 0.003).exp()).clamp(fit * 0.25, 64.0);
            view.center = before - (p - rect.center()) / new_scale;
            scale = new_scale;
            view.zoom = Some(scale);
        }
    }
    let mut out = ViewerOutput {
        rect: Some(rect),
        ..Default::default()
    };
    // Right drag: window (horizontal) and level (vertical), as OHIF and Weasis do.
    if response.dragged_by(PointerButton::Secondary) {
        let d = response.drag_delta();
        let (lo, hi) = r.value_range;
        let span = if film.table_voi {
            1.0
        } else {
            (hi - lo).max(1.0)
        };
        let k = span / f64::from(rect.width().max(100.0));
        let min_width = match view.window.function {
            VoiFunction::Linear => 1.0,
            _ => 1e-3,
        };
        view.window.width = (view.window.width + f64::from(d.x) * k).max(min_width);
        view.window.center += f64::from(d.y) * k;
        view.window_name = "manual".into();
    }
    // Left drag: pan, or draw a crop rectangle with the crop tool.
    let image_rect = Rect::from_min_max(Pos2::ZERO, Pos2::new(w, h));
    if crop_tool {
        let start_id = response.id.with("crop_start");
        if response.drag_started_by(PointerButton::Primary)
            && let Some(p) = response.interact_pointer_pos()
        {
            ui.data_mut(|d| d.insert_temp(start_id, to_image(p, scale, view.center)));
        }
        let start: Option<Pos2> = ui.data(|d| d.get_temp(start_id));
        if let (Some(a), Some(p)) = (start, response.interact_pointer_pos()) {
            let b = to_image(p, scale, view.center);
            let sel = Rect::from_two_pos(a, b).intersect(image_rect);
            let screen = Rect::from_min_max(
                rect.center() + (sel.min - view.center) * scale,
                rect.center() + (sel.max - view.center) * scale,
            );
            if response.drag_stopped() {
                ui.data_mut(|d| d.remove::<Pos2>(start_id));
                if sel.width() >= 8.0 && sel.height() >= 8.0 {
                    out.new_crop = Some(CropRect {
                        x: sel.min.x.round() as u32,
                        y: sel.min.y.round() as u32,
                        width: sel.width().round() as u32,
                        height: sel.height().round() as u32,
                    });
                }
            } else {
                ui.painter().rect_stroke(
                    screen,
                    0.0,
                    Stroke::new(1.5, Color32::YELLOW),
                    egui::StrokeKind::Middle,
                );
            }
        }
    } else if response.dragged_by(PointerButton::Primary) {
        view.center -= response.drag_delta() / scale;
        view.zoom = Some(scale);
    }

    let origin = rect.center() - view.center.to_vec2() * scale;
    let (func, center, width) = if film.table_voi {
        (3, 0.5, 1.0)
    } else {
        let f = match view.window.function {
            VoiFunction::Linear => 0,
            VoiFunction::LinearExact => 1,
            VoiFunction::Sigmoid => 2,
        };
        (f, view.window.center as f32, view.window.width as f32)
    };
    let tex = &film.texture_values;
    // The texture may be smaller than the film (very large films): scale its pixels to the film's.
    let tex_scale = scale * w / tex.width as f32;
    let uniforms = Uniforms {
        image_origin: [origin.x, origin.y],
        image_size: [tex.width as f32, tex.height as f32],
        scale: tex_scale,
        center,
        width,
        func,
        invert: u32::from(view.invert),
        srgb: 0,
        heat_opacity: view.heat_opacity,
        pad0: 0.0,
        pad1: [0.0; 4],
    };
    ui.painter().rect_filled(rect, 0.0, Color32::from_gray(8));
    ui.painter().add(egui_wgpu::Callback::new_paint_callback(
        rect,
        Paint {
            film: Arc::clone(tex),
            film_key: film.key,
            heat: heat.cloned(),
            uniforms,
        },
    ));
    if let Some(c) = crop {
        let a = rect.center() + (Pos2::new(c.x as f32, c.y as f32) - view.center) * scale;
        let b = a + Vec2::new(c.width as f32, c.height as f32) * scale;
        ui.painter().rect_stroke(
            Rect::from_min_max(a, b),
            0.0,
            Stroke::new(1.5, Color32::from_rgb(80, 200, 255)),
            egui::StrokeKind::Middle,
        );
    }
    if let Some(p) = response.hover_pos() {
        let ip = to_image(p, scale, view.center);
        if image_rect.contains(ip) {
            let (x, y) = (ip.x as u32, ip.y as u32);
            if x < r.width() && y < r.height() {
                out.readout = Some((x, y, r.image.get(x, y)));
            }
        }
    }
    out
}
