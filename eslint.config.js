// ESLint for the operations dashboard (browser ES modules) and its Node unit tests.
// Run by `make lint`; generated code and installed packages are not ours to lint.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", ".venv/", "data/", "madina_proto/", "bench/results/"] },
  js.configs.recommended,
  {
    files: ["services/**/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.browser },
  },
  {
    files: ["tests/**/*.mjs", "eslint.config.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.node },
  },
];
