/* A BlurHash decoder (https://blurha.sh), small enough to keep here instead of a dependency. */
(function () {
  "use strict";
  var DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

  function decode83(text) {
    var value = 0;
    for (var i = 0; i < text.length; i++) {
      var digit = DIGITS.indexOf(text[i]);
      if (digit < 0) throw new Error("not a blurhash");
      value = value * 83 + digit;
    }
    return value;
  }
  function toLinear(v) { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }
  function toSRGB(v) {
    v = Math.max(0, Math.min(1, v));
    return v <= 0.0031308 ? Math.round(v * 12.92 * 255 + 0.5) : Math.round((1.055 * Math.pow(v, 1 / 2.4) - 0.055) * 255 + 0.5);
  }
  function signPow(v, exp) { return (v < 0 ? -1 : 1) * Math.pow(Math.abs(v), exp); }

  /* RGBA pixels of a width × height picture of the hash. */
  function decode(hash, width, height) {
    var sizeFlag = decode83(hash[0]);
    var numY = Math.floor(sizeFlag / 9) + 1, numX = (sizeFlag % 9) + 1;
    if (hash.length !== 4 + 2 * numX * numY) throw new Error("blurhash length mismatch");
    var maximum = (decode83(hash[1]) + 1) / 166;
    var colors = [];
    var dc = decode83(hash.substring(2, 6));
    colors.push([toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]);
    for (var i = 1; i < numX * numY; i++) {
      var ac = decode83(hash.substring(4 + i * 2, 6 + i * 2));
      colors.push([signPow((Math.floor(ac / 361) - 9) / 9, 2) * maximum,
                   signPow((Math.floor(ac / 19) % 19 - 9) / 9, 2) * maximum,
                   signPow((ac % 19 - 9) / 9, 2) * maximum]);
    }
    var pixels = new Uint8ClampedArray(width * height * 4);
    for (var y = 0; y < height; y++) {
      for (var x = 0; x < width; x++) {
        var r = 0, g = 0, b = 0;
        for (var j = 0; j < numY; j++) {
          for (var k = 0; k < numX; k++) {
            var basis = Math.cos(Math.PI * x * k / width) * Math.cos(Math.PI * y * j / height);
            var c = colors[k + j * numX];
            r += c[0] * basis; g += c[1] * basis; b += c[2] * basis;
          }
        }
        var p = 4 * (x + y * width);
        pixels[p] = toSRGB(r); pixels[p + 1] = toSRGB(g); pixels[p + 2] = toSRGB(b); pixels[p + 3] = 255;
      }
    }
    return pixels;
  }

  /* A data: URL of the hash drawn small (the browser scales it up smoothly), or null. */
  function toDataURL(hash, width, height) {
    try {
      var canvas = document.createElement("canvas");
      canvas.width = width; canvas.height = height;
      var context = canvas.getContext("2d");
      var picture = context.createImageData(width, height);
      picture.data.set(decode(hash, width, height));
      context.putImageData(picture, 0, 0);
      return canvas.toDataURL();
    } catch (error) {
      return null;
    }
  }

  window.Blurhash = { decode: decode, toDataURL: toDataURL };
})();
