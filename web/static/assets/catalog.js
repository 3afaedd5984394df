// catalog.js: the names the wizard shows: its pages, the API types, the
// environments, the deployment's steps and what a busy deployment is doing.
import { app } from './state.js';

// The wizard's pages, in the walkthrough's order and with its names.
export const PAGES = [
  { key: 'datatype', title: 'Select Data Type, Environment Type' },
  { key: 'server', title: 'Select Server, Naming, Dependencies' },
  { key: 'code', title: 'Code Repo Integration' },
  { key: 'integrate', title: 'Integrate Algorithm into API' },
  { key: 'test', title: 'Test Your Code' },
  { key: 'dependencies', title: 'Add More Dependencies' },
  { key: 'use', title: 'Using the Algorithm' },
  { key: 'complete', title: 'Complete Deployment' },
];
// OTHER_PAGES are a deployment's pages outside the walkthrough's steps.
export const OTHER_PAGES = [{ key: 'jobs', title: 'Jobs' }];
// pageTitle is a page's name as the walkthrough has it.
export const pageTitle = (key) => (PAGES.find((p) => p.key === key) || OTHER_PAGES.find((p) => p.key === key) || { title: key }).title;

// The eight image API types of the walkthrough come first on the data type
// page; the rest of what /ui/options.json lists follows.
export const IMAGE_APIS = ['image:image', 'image:json', 'image:numpy', 'image:file', 'numpy:image', 'numpy:numpy', 'file:image', 'json:image'];

// IO describes each API type: its label, its short name and what predict(x)
// gets as input and may return as output.
export const IO = {
  image: {
    label: 'image',
    short: 'PNG/JPEG',
    input: 'The client sends PNG, JPEG or GIF bytes (raw, multipart field "image", base64 in JSON, or a URL to download). predict(x) gets x: numpy.ndarray of shape (height, width, 3), dtype uint8, RGB. For PIL: Image.fromarray(x).',
    output: 'Return a numpy array (height, width) for grayscale, (height, width, 3) RGB or (height, width, 4) RGBA: uint8, bool (0/255) or floats in [0, 1]; a PIL image works too. The client gets a lossless PNG.',
  },
  numpy: {
    label: 'numpy',
    short: '.npy array',
    input: 'The client sends a .npy file (raw, or multipart field "array"). predict(x) gets x: numpy.ndarray with the file\'s dtype and shape (native byte order, C order, writable).',
    output: 'Return a numpy array (or a list or scalar) of any shape; bool, int, uint and float dtypes. The client gets a .npy file, what np.save writes.',
  },
  json: {
    label: 'JSON',
    short: 'JSON',
    input: 'The client sends any JSON value. predict(x) gets what json.loads returns: dict, list, str, int, float, bool or None.',
    output: 'Return anything json.dumps can write (numpy scalars and arrays are converted). The client gets application/json.',
  },
  file: {
    label: 'file',
    short: 'any file',
    input: 'The client uploads a file (multipart field "file", or raw bytes with ?filename=). predict(x) gets an object with x.name (str), x.data (bytes) and x.content_type (str).',
    output: 'Return (name, data) or (name, data, content_type), data being bytes or str. The client gets the file as an attachment.',
  },
};

// Environment onnx: a .onnx model served by ONNX Runtime with the
// preprocessing and postprocessing its aai_onnx.json declares.
const ONNX = 'onnx';
// ONNX_CONFIG is the ONNX model's configuration file, its main file.
export const ONNX_CONFIG = 'aai_onnx.json';
// isONNX tells whether env serves an ONNX model.
export const isONNX = (env) => env === ONNX;
// envLabel is an environment's name on the pages.
export const envLabel = (env) => (env === 'python' ? 'Python 3' : isONNX(env) ? 'ONNX model' : env);
// envSubject is an environment as the subject of a sentence.
export const envSubject = (env) => (isONNX(env) ? 'An ONNX model' : envLabel(env));
// servedPairs lists the API types ("input:output") env serves; null: all
// of them (/ui/options.json's environment_pairs names only the others).
export function servedPairs(env) {
  const ep = (app.options && app.options.environment_pairs) || {};
  return ep[env] ? ep[env].map((p) => p.input + ':' + p.output) : null;
}
// pairsText names API types ("input:output" keys) for a sentence.
export const pairsText = (keys) => keys.map((k) => { const [i, o] = k.split(':'); return IO[i].label + ' → ' + IO[o].label; }).join(' and ');

// STEP_LABELS names the deployment's steps.
export const STEP_LABELS = {
  configured: 'Configured', provisioned: 'Server ready', code_fetched: 'Code fetched',
  requirements_installed: 'Requirements installed', tested: 'Tested', completed: 'Completed', deleted: 'Deleted',
};
// BUSY_LABELS says what a busy deployment is doing.
export const BUSY_LABELS = {
  provision: 'Provisioning the server and its certificate', fetch_code: 'Fetching your code',
  install_requirements: 'Installing requirements (pip)', test: 'Testing your code', complete: 'Completing the deployment: starting the endpoint',
  stop: 'Stopping the endpoint', start: 'Starting the endpoint', configure: 'Saving the configuration',
  reconcile: 'Bringing the endpoint back', delete: 'Deleting the deployment', renew_certificate: 'Renewing the certificate',
};

