import { defineConformanceSuite } from './suite.js';
import { nodeSdk } from './sdks.js';

defineConformanceSuite(nodeSdk);
