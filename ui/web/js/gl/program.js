// gl/program.js -- compile and link shader programs; failures throw with the info log.

/**
 * Compile one shader stage.
 * @param {WebGL2RenderingContext} gl
 * @param {number} type gl.VERTEX_SHADER or gl.FRAGMENT_SHADER
 * @param {string} source GLSL ES 3.00 source
 * @param {string} name file name for messages
 */
export function compile(gl, type, source, name) {
  const sh = gl.createShader(type);
  gl.shaderSource(sh, source);
  gl.compileShader(sh);
  if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) {
    const log = gl.getShaderInfoLog(sh);
    gl.deleteShader(sh);
    console.error(`${name}:\n${log}`);
    throw new Error(`Shader ${name} failed to compile: ${log}`);
  }
  return sh;
}

/**
 * Link a program and cache its uniform locations.
 * @returns {{program: WebGLProgram, u: Object<string, WebGLUniformLocation>}}
 */
export function link(gl, vsSource, fsSource, names) {
  const vs = compile(gl, gl.VERTEX_SHADER, vsSource, names[0]);
  const fs = compile(gl, gl.FRAGMENT_SHADER, fsSource, names[1]);
  const program = gl.createProgram();
  gl.attachShader(program, vs);
  gl.attachShader(program, fs);
  gl.linkProgram(program);
  gl.deleteShader(vs);
  gl.deleteShader(fs);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
    const log = gl.getProgramInfoLog(program);
    console.error(log);
    throw new Error(`Shader program ${names.join('+')} failed to link: ${log}`);
  }
  const u = {};
  const n = gl.getProgramParameter(program, gl.ACTIVE_UNIFORMS);
  for (let i = 0; i < n; i++) {
    const info = gl.getActiveUniform(program, i);
    u[info.name] = gl.getUniformLocation(program, info.name);
  }
  return { program, u };
}
