import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'coverage/', 'test-output/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: false }],
      // config.ts is the only reader of the environment (STYLE.md)
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'read configuration through config.ts' }],
    },
  },
  { files: ['config.ts', 'test/**', 'bench/**'], rules: { 'no-restricted-properties': 'off' } },
)
