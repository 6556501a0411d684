// Lint with type information: the rules that matter here (promises nobody awaits, async callbacks
// handed to APIs that ignore the returned promise) need the type checker. The project service
// picks each file's nearest tsconfig: client/tsconfig.json for client/src (browser lib, no Node
// types), tsconfig.json for everything else.
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'client/dist/',
      'data/',
      'bench/results/',
      // k6 script: runs in k6's own runtime (k6/* modules, __ENV), not Node; k6 checks it.
      'bench/k6/',
      // The demo page is plain browser JS served as-is, outside the linted directories.
      'demo/'
    ]
  },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname
      }
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // tap queues subtests and awaits them itself; awaiting each t.test() would only
          // serialise what tap already orders.
          allowForKnownSafeCalls: [
            { from: 'package', package: '@tapjs/test', name: ['test', 'todo', 'skip', 'only'] }
          ]
        }
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      // `async` without `await` is deliberate here: it implements a Promise-returning interface
      // (Fastify plugins, in-memory stores beside Redis ones) and turns a throw into a rejection.
      '@typescript-eslint/require-await': 'off',
      // A caught value re-raised as it is (the client's emitter reports a listener's throw) is fine.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      '@typescript-eslint/no-unused-vars': ['error', {
        argsIgnorePattern: '^_',
        varsIgnorePattern: '^_',
        caughtErrorsIgnorePattern: '^_',
        // `const { secret, ...rest } = x` is how a field is left out of a copy.
        ignoreRestSiblings: true
      }]
    }
  },
  {
    // Kysely's migration signature: a migration takes Kysely<any> so it never depends on today's
    // schema types, and a shipped migration is frozen.
    files: ['db/migrate.ts', 'db/migrations/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' }
  },
  {
    // Tests read untyped JSON (response bodies, frames, log lines) and check its shape at run time
    // with t.match/t.same, so `any` there is the point, not a hole; the promise rules stay on.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off'
    }
  },
  {
    // Plain JS/ESM build scripts: syntax-level rules only; they have no type information.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.recommended, tseslint.configs.disableTypeChecked]
  }
)
