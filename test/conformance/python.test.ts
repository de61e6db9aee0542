import { defineConformanceSuite } from './suite.js';
import { pythonSdk } from './sdks.js';

defineConformanceSuite(pythonSdk);
