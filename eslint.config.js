import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'coverage/', 'test-output/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // type-aware rules: a promise nobody awaits or handles is a lost error (or an unhandled rejection that ends the process)
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: false }],
      // config.ts is the only reader of the environment (docs/architecture.md §10)
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'read configuration through config.ts' }],
    },
  },
  { files: ['config.ts', 'test/**', 'bench/**'], rules: { 'no-restricted-properties': 'off' } },
  // the plain JavaScript entries run on node
  { files: ['bin/**/*.js', 'processors/**/*.js'], languageOptions: { globals: { process: 'readonly', URL: 'readonly' } } },
)
