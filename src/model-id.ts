// The id of the vendored embedder (MobileFaceNet, ArcFace-trained, 128-d): galleries filled from
// images carry it. Its own module so that runtime-neutral code can name it without loading models.
export const DEFAULT_EMBEDDER_ID = 'mobilefacenet-arcface';
