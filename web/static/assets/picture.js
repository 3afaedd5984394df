// picture.js: the data flow pictures of the API types, drawn as inline SVG
// (nothing loaded).
import { s } from './dom.js';
import { IO, isONNX } from './catalog.js';

function ioIcon(type, x, y) {
  const g = s('g', { transform: 'translate(' + x + ' ' + y + ')' });
  const stroke = { fill: 'none', stroke: '#1f4fd1', 'stroke-width': 2, 'stroke-linejoin': 'round', 'stroke-linecap': 'round' };
  if (type === 'image') {
    g.append(s('rect', Object.assign({ x: 1, y: 3, width: 30, height: 24, rx: 3 }, stroke)),
      s('circle', { cx: 10, cy: 11, r: 3, fill: '#f0a500' }),
      s('path', { d: 'M3 25l8-9 6 6 5-4 8 7', fill: 'none', stroke: '#11743a', 'stroke-width': 2, 'stroke-linejoin': 'round' }));
  } else if (type === 'numpy') {
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) {
      g.append(s('rect', { x: 2 + c * 10, y: 2 + r * 9, width: 8, height: 7, rx: 1.5, fill: (r + c) % 2 ? '#9fb3e6' : '#1f4fd1' }));
    }
  } else if (type === 'json') {
    g.append(s('text', { x: 16, y: 22, 'text-anchor': 'middle', 'font-size': 20, 'font-family': 'monospace', 'font-weight': 700, fill: '#1f4fd1' }, '{ }'));
  } else {
    g.append(s('path', Object.assign({ d: 'M6 2h14l7 7v19H6z' }, stroke)), s('path', Object.assign({ d: 'M20 2v7h7' }, stroke)),
      s('path', { d: 'M10 15h12M10 20h12', stroke: '#9fb3e6', 'stroke-width': 2 }));
  }
  return g;
}
// flowPicture draws client → input → predict() → output → client (for
// environment onnx: → the ONNX model and its aai_onnx.json →).
export function flowPicture(input, output, env) {
  const onnx = isONNX(env);
  const arrow = (x1, x2) => s('path', { d: 'M' + x1 + ' 30h' + (x2 - x1 - 4) + 'm-4 -4l4 4-4 4', fill: 'none', stroke: '#5a6275', 'stroke-width': 1.6, 'stroke-linecap': 'round', 'stroke-linejoin': 'round' });
  return s('svg', { viewBox: '0 0 230 60', role: 'img', 'aria-label': IO[input].label + ' in, ' + IO[output].label + ' out' },
    ioIcon(input, 2, 15), arrow(38, 64),
    s('rect', { x: 66, y: 12, width: 98, height: 36, rx: 8, fill: '#e8eefc', stroke: '#1f4fd1', 'stroke-width': 1.5 }),
    s('text', { x: 115, y: 28, 'text-anchor': 'middle', 'font-size': 11, 'font-family': 'sans-serif', fill: '#173ba0', 'font-weight': 700 }, onnx ? 'ONNX model' : 'aai_main.py'),
    s('text', { x: 115, y: 41, 'text-anchor': 'middle', 'font-size': 10, 'font-family': 'monospace', fill: '#173ba0' }, onnx ? 'aai_onnx.json' : 'predict(x)'),
    arrow(166, 192), ioIcon(output, 196, 15));
}
